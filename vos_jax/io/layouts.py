"""The DAVIS and YouTube-VOS folder layouts: the one place that knows where their files live.

DAVIS (2016, 2017 and the built-in synthetic dataset), `DavisLayout`:
  <root>/JPEGImages/<res>/<seq>/<frame>.jpg
  <root>/Annotations/<res>/<seq>/<frame>.png               semi-supervised ground truth
  <root>/Annotations_unsupervised/<res>/<seq>/<frame>.png  unsupervised ground truth
  <root>/ImageSets/<year>/<split>.txt                      one sequence name per line
YouTube-VOS (2018, 2019), `YoutubeLayout`:
  <root>/<split>/JPEGImages/<video>/<frame>.jpg   (<split>_all_frames/JPEGImages: all frames)
  <root>/<split>/Annotations/<video>/<frame>.png
  <root>/<split>/meta.json   {"videos": {<video>: {"objects": {<id>: {"category", "frames"}}}}}

Errors are `LayoutError`s whose message names the path and what was expected there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jaxtyping import UInt8
from PIL import Image

from vos_jax.io.masks import read_mask
from vos_jax.io.video import natural_key

TASKS = ("semi-supervised", "unsupervised")
_ANNOTATIONS = {"semi-supervised": "Annotations", "unsupervised": "Annotations_unsupervised"}
# Folder names of a resolution under JPEGImages/: the 2016 release calls full resolution 1080p.
RESOLUTION_FOLDERS = {"480p": ("480p",), "Full-Resolution": ("Full-Resolution", "1080p")}
YOUTUBE_SPLITS = ("train", "valid", "test")


class LayoutError(ValueError):
    """A dataset folder or file is missing or malformed; the message names the path."""


def list_frames(folder: Path) -> list[Path]:
    """The .jpg files of a frame folder, in natural name order (`2` before `10`, as
    `vos-jax segment` reads them; raises if there are none)."""
    folder = Path(folder)
    frames = [p for p in folder.glob("*.jpg") if p.is_file()] if folder.is_dir() else []
    frames.sort(key=lambda p: natural_key(p.name))
    if not frames:
        raise LayoutError(f"{folder}: expected a folder of .jpg frames, found none")
    return frames


def _natural_name(path: Path) -> tuple:
    return natural_key(path.name)


def parse_image_set(path: Path) -> list[str]:
    """The sequence names of an ImageSets list file, in order, each once.

    2017 lists hold one name per line; the 2016 release's `ImageSets/<res>/<split>.txt` lists
    frame/mask path pairs (`/JPEGImages/480p/<seq>/00000.jpg /Annotations/...`), named by folder.
    """
    tokens = (line.split()[0] for line in Path(path).read_text().splitlines() if line.strip())
    return list(dict.fromkeys(Path(t).parent.name if "/" in t else t for t in tokens))


def find_davis_root(folder: str | os.PathLike) -> Path | None:
    """`folder` or `folder/DAVIS`, whichever holds JPEGImages/ and ImageSets/; else None."""
    for cand in (Path(folder), Path(folder) / "DAVIS"):
        if (cand / "JPEGImages").is_dir() and (cand / "ImageSets").is_dir():
            return cand
    return None


def davis_resolution_folder(root: str | os.PathLike, resolution: str) -> str:
    """The folder of `resolution` ('480p' or 'Full-Resolution') present under JPEGImages/."""
    for name in RESOLUTION_FOLDERS.get(resolution, (resolution,)):
        if (Path(root) / "JPEGImages" / name).is_dir():
            return name
    raise LayoutError(
        f"{Path(root) / 'JPEGImages' / resolution}: expected the {resolution} frame folders "
        f"(JPEGImages/{resolution}/<seq>/*.jpg)"
    )


@dataclass(frozen=True)
class DavisLayout:
    """A DAVIS folder at one resolution (`resolution` is the folder name: '480p', ...)."""

    root: Path
    resolution: str = "480p"

    def image_set_path(self, split: str, year: int | str = 2017) -> Path:
        """Where the sequence list of a split lives (whether or not it exists)."""
        return self.root / "ImageSets" / str(year) / f"{split}.txt"

    def find_image_set(self, split: str, year: int | str = 2017) -> Path | None:
        """The sequence list of a split, or None; 2016 also looks in the 2016 release's
        `ImageSets/<480p|1080p>/<split>.txt`."""
        candidates = [self.image_set_path(split, year)]
        if str(year) == "2016":
            candidates += [self.root / "ImageSets" / r / f"{split}.txt" for r in ("480p", "1080p")]
        return next((p for p in candidates if p.is_file()), None)

    def sequences(self, split: str = "val", year: int | str = 2017) -> list[str]:
        """The sequence names of a split's image set (raises if it is absent)."""
        path = self.find_image_set(split, year)
        if path is None:
            raise LayoutError(
                f"{self.image_set_path(split, year)}: sequence list not found "
                "(expected one sequence name per line)"
            )
        return parse_image_set(path)

    def frames_dir(self, seq: str) -> Path:
        return self.root / "JPEGImages" / self.resolution / seq

    def annotations_root(self, task: str = "semi-supervised") -> Path:
        """The folder of every sequence's ground truth for `task` (one of TASKS)."""
        if task not in _ANNOTATIONS:
            raise ValueError(f"task: expected one of {TASKS}, got {task!r}")
        return self.root / _ANNOTATIONS[task] / self.resolution

    def annotations_dir(self, seq: str, task: str = "semi-supervised") -> Path:
        return self.annotations_root(task) / seq

    def frame_paths(self, seq: str) -> list[Path]:
        """The sequence's .jpg frames in order (raises if there are none)."""
        return list_frames(self.frames_dir(seq))

    def mask_path(self, seq: str, frame: str, task: str = "semi-supervised") -> Path:
        """The annotation of the frame named `frame` (file stem), whether or not it exists."""
        return self.annotations_dir(seq, task) / f"{frame}.png"

    def mask_paths(self, seq: str, task: str = "semi-supervised") -> list[Path]:
        """The sequence's annotation PNGs in order (empty if none)."""
        return sorted(self.annotations_dir(seq, task).glob("*.png"), key=_natural_name)

    def first_mask_path(self, seq: str) -> Path:
        """The first-frame annotation: the sequence's first PNG in name order."""
        paths = self.mask_paths(seq)
        if not paths:
            raise LayoutError(
                f"{self.annotations_dir(seq)}: no first-frame annotation for {seq!r} "
                "(expected <frame>.png files)"
            )
        return paths[0]

    def check_sequences(self, seqs: Iterable[str], task: str = "semi-supervised") -> None:
        """Raise if a listed sequence lacks its frame or annotation folder."""
        for seq in seqs:
            frames, masks = self.frames_dir(seq), self.annotations_dir(seq, task)
            if not frames.is_dir():
                raise LayoutError(
                    f"{frames}: sequence {seq!r} is listed in the image set but its frame folder "
                    "is missing"
                )
            if not masks.is_dir():
                raise LayoutError(
                    f"{masks}: expected the annotation folder of {frames} (one .png per frame)"
                )


def read_davis_sequence(
    root: str | os.PathLike, seq: str, resolution: str = "480p"
) -> tuple[UInt8[np.ndarray, "T H W 3"], UInt8[np.ndarray, "T H W"]]:
    """A sequence's frames and its masks of object ids (one annotation per frame)."""
    layout = DavisLayout(Path(root), resolution)
    frames, masks = [], []
    for path in layout.frame_paths(seq):
        with Image.open(path) as image:
            frames.append(np.asarray(image.convert("RGB")))
        masks.append(read_mask(layout.mask_path(seq, path.stem)))
    return np.stack(frames), np.stack(masks)


@dataclass(frozen=True)
class YoutubeObject:
    """One object of a video in meta.json: its id, category and the frames listing it."""

    id: int
    category: str
    frames: tuple[str, ...]


@dataclass(frozen=True)
class YoutubeLayout:
    """One split of a YouTube-VOS folder; `all_frames` reads `<split>_all_frames/JPEGImages`."""

    root: Path
    split: str = "train"
    all_frames: bool = False

    @property
    def split_dir(self) -> Path:
        return self.root / self.split

    @property
    def frames_root(self) -> Path:
        folder = f"{self.split}_all_frames" if self.all_frames else self.split
        return self.root / folder / "JPEGImages"

    @property
    def annotations_root(self) -> Path:
        return self.split_dir / "Annotations"

    @property
    def meta_path(self) -> Path:
        return self.split_dir / "meta.json"

    def exists(self) -> bool:
        """Whether the split (and, for all_frames, its all-frames folder) is present."""
        return self.split_dir.is_dir() and self.frames_root.parent.is_dir()

    def check(self) -> None:
        """Raise if the split's frame folders, annotation folders or meta.json are missing."""
        for path, what in (
            (self.frames_root, "frame folders <video>/<frame>.jpg"),
            (self.annotations_root, "annotation folders <video>/<frame>.png"),
            (self.meta_path, "the split's meta.json"),
        ):
            if not path.exists():
                raise LayoutError(f"{path}: missing; expected {what} here")

    def meta(self) -> dict[str, dict[int, YoutubeObject]]:
        """{video: {object id: object}} from meta.json (ids may be non-contiguous)."""
        self.check()
        try:
            videos = json.loads(self.meta_path.read_text())["videos"]
            if not isinstance(videos, dict):
                raise TypeError("'videos' is not an object")
        except (ValueError, KeyError, TypeError) as err:
            raise LayoutError(
                f"{self.meta_path}: expected JSON {{'videos': {{<video>: {{'objects': ...}}}}}} "
                f"({err!r})"
            ) from None
        return {vid: self._objects(vid, info) for vid, info in videos.items()}

    def _objects(self, vid: str, info) -> dict[int, YoutubeObject]:
        try:
            objects = {int(k): v for k, v in info.get("objects", {}).items()}
            return {
                k: YoutubeObject(
                    k,
                    str(v.get("category", "")),
                    tuple(sorted(v.get("frames", []), key=natural_key)),
                )
                for k, v in sorted(objects.items())
            }
        except (AttributeError, TypeError, ValueError) as err:
            raise LayoutError(
                f"{self.meta_path}: video {vid!r}: expected 'objects': {{<integer id>: "
                f"{{'category': ..., 'frames': [...]}}}} ({err!r})"
            ) from None

    def videos(self) -> list[str]:
        """The videos meta.json lists, sorted."""
        return sorted(self.meta())

    def unlisted_videos(self, listed: Iterable[str]) -> list[str]:
        """Frame folders of videos not in `listed` (the official lists are what is evaluated)."""
        listed = set(listed)
        return sorted(
            p.name for p in self.frames_root.iterdir() if p.is_dir() and p.name not in listed
        )

    def frames_dir(self, vid: str) -> Path:
        return self.frames_root / vid

    def annotations_dir(self, vid: str) -> Path:
        return self.annotations_root / vid

    def frame_paths(self, vid: str) -> list[Path]:
        """The video's .jpg frames in order (raises if its folder is missing or empty)."""
        if not self.frames_dir(vid).is_dir():
            raise LayoutError(
                f"{self.frames_dir(vid)}: video {vid!r} is listed in {self.meta_path} but has no "
                "frame folder"
            )
        return list_frames(self.frames_dir(vid))

    def mask_path(self, vid: str, frame: str) -> Path:
        """The annotation of the frame named `frame`, whether or not it exists (valid/test
        annotate only the frames where an object first appears)."""
        return self.annotations_dir(vid) / f"{frame}.png"

    def mask_paths(self, vid: str) -> list[Path]:
        """The video's annotation PNGs in order (raises if its folder is missing)."""
        if not self.annotations_dir(vid).is_dir():
            raise LayoutError(
                f"{self.annotations_dir(vid)}: video {vid!r} is listed in {self.meta_path} but has "
                "no annotation folder"
            )
        return sorted(self.annotations_dir(vid).glob("*.png"), key=_natural_name)
