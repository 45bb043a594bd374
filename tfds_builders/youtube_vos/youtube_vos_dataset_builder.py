"""youtube_vos: YouTube-VOS 2018 / 2019 semi-supervised VOS, read from the extracted official zips.

One example per video: every frame's original JPEG bytes, a 1-channel id PNG per frame (all zero
where the frame has no annotation, see `has_mask`), and the objects of meta.json. valid/test are
annotated only where each object first appears. Built and read without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from tfds_builders import vos_common
from vos_jax.io.masks import read_mask

_SPLITS = ("train", "valid", "test")
_EXPECTED = """\
  <manual_dir>/<split>/JPEGImages/<video>/<frame>.jpg     (split: train, valid, test)
  <manual_dir>/<split>/Annotations/<video>/<frame>.png
  <manual_dir>/<split>/meta.json  ({"videos": {<video>: {"objects": {<id>: {"category": ...,
                                                                           "frames": [...]}}}}})
  *_all_frames configs read frames from <manual_dir>/<split>_all_frames/JPEGImages/<video>/
  (the official <split>_all_frames.zip), annotations still from <manual_dir>/<split>/."""


@dataclasses.dataclass
class YoutubeConfig(tfds.core.BuilderConfig):
    """Release year (documentation only: the layout is the same) and which frames to read."""

    year: int = 2019
    all_frames: bool = False


def _config(year: int, all_frames: bool) -> YoutubeConfig:
    rate = "all 30 fps frames" if all_frames else "every 5th frame"
    return YoutubeConfig(
        name=f"{year}_all_frames" if all_frames else str(year),
        description=f"YouTube-VOS {year}, {rate}",
        year=year,
        all_frames=all_frames,
    )


class Builder(tfds.core.GeneratorBasedBuilder):
    """YouTube-VOS video object segmentation (manual download)."""

    name = "youtube_vos"
    # TFDS 4.9.10 finds checksums.tsv via importlib_resources (a dependency only for Python < 3.9)
    # for builders outside its own package; naming the file directly avoids that import
    code_path = epath.Path(__file__)
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [_config(y, a) for a in (False, True) for y in (2018, 2019)]
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Register at https://youtube-vos.org/dataset/ (the data is on CodaLab / Google Drive), download
train.zip, valid.zip (and test.zip, valid_all_frames.zip, train_all_frames.zip as needed) of the
2018 or 2019 release and extract them into the manual dir:
{_EXPECTED}
"""

    def __init__(self, *, file_format=None, **kwargs):
        # array_record is the format tfds.data_source reads without TensorFlow
        super().__init__(file_format=file_format or "array_record", **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        objects = tfds.features.Sequence(
            {"id": np.int32, "category": tfds.features.Text(), "first_frame": np.int32}
        )
        return self.dataset_info_from_configs(
            features=vos_common.video_features(objects=objects),
            homepage="https://youtube-vos.org/",
            supervised_keys=None,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = vos_common.manual_dir(dl_manager)
        all_frames = self.builder_config.all_frames
        splits = {}
        for split in _SPLITS:
            frame_root = root / (f"{split}_all_frames" if all_frames else split) / "JPEGImages"
            if not (root / split).is_dir() or (all_frames and not frame_root.parent.is_dir()):
                continue
            meta = _read_meta(root / split, frame_root)
            splits[split] = self._generate_examples(root / split, frame_root, meta)
        if not splits:
            where = "<split>/ and <split>_all_frames/" if all_frames else "<split>/"
            raise vos_common.DatasetLayoutError(
                f"{root}: found no split folder ({where} for a split in {', '.join(_SPLITS)})."
                f"\nExpected layout:\n{_EXPECTED}"
            )
        return splits

    def _generate_examples(self, split_dir: Path, frame_root: Path, meta: dict):
        """One example per video listed in meta.json."""
        for vid in sorted(meta):
            yield vid, _example(split_dir, frame_root, vid, meta[vid])


def _read_meta(split_dir: Path, frame_root: Path) -> dict:
    """meta.json's videos, after checking the split's folders; warns about unlisted videos."""
    meta_path = split_dir / "meta.json"
    for path, what in (
        (frame_root, "frame folders <video>/<frame>.jpg"),
        (split_dir / "Annotations", "annotation folders <video>/<frame>.png"),
        (meta_path, "the split's meta.json"),
    ):
        if not path.exists():
            raise vos_common.DatasetLayoutError(
                f"{path}: missing; expected {what} here.\nExpected layout:\n{_EXPECTED}"
            )
    try:
        videos = json.loads(meta_path.read_text())["videos"]
        if not isinstance(videos, dict):
            raise TypeError("'videos' is not an object")
    except (ValueError, KeyError, TypeError) as err:
        raise vos_common.DatasetLayoutError(
            f"{meta_path}: expected JSON {{'videos': {{<video>: {{'objects': ...}}}}}} ({err!r})"
        ) from None
    unlisted = sorted(p.name for p in frame_root.iterdir() if p.is_dir() and p.name not in videos)
    if unlisted:  # not an error: the official lists are what the benchmark evaluates
        logging.warning(
            "%s: %d video folder(s) not in %s, skipped: %s",
            frame_root,
            len(unlisted),
            meta_path,
            ", ".join(unlisted[:5]),
        )
    return {vid: (meta_path, info) for vid, info in videos.items()}


def _meta_objects(meta_path: Path, vid: str, info) -> dict[int, dict]:
    """{id: {'category', 'frames'}} of one video in meta.json (ids may be non-contiguous)."""
    try:
        objects = {int(k): v for k, v in info.get("objects", {}).items()}
        return {
            k: {"category": str(v.get("category", "")), "frames": sorted(v.get("frames", []))}
            for k, v in sorted(objects.items())
        }
    except (AttributeError, TypeError, ValueError) as err:
        raise vos_common.DatasetLayoutError(
            f"{meta_path}: video {vid!r}: expected 'objects': {{<integer id>: {{'category': ..., "
            f"'frames': [...]}}}} ({err!r})"
        ) from None


def _example(split_dir: Path, frame_root: Path, vid: str, entry: tuple[Path, dict]) -> dict:
    """Read and check one video against meta.json."""
    meta_path, info = entry
    objects = _meta_objects(meta_path, vid, info)
    frame_dir, ann_dir = frame_root / vid, split_dir / "Annotations" / vid
    if not frame_dir.is_dir():
        raise vos_common.DatasetLayoutError(
            f"{frame_dir}: video {vid!r} is listed in {meta_path} but has no frame folder"
        )
    if not ann_dir.is_dir():
        raise vos_common.DatasetLayoutError(
            f"{ann_dir}: video {vid!r} is listed in {meta_path} but has no annotation folder"
        )
    paths = vos_common.list_frames(frame_dir)
    names = [p.stem for p in paths]
    orphans = sorted(set(p.stem for p in ann_dir.glob("*.png")) - set(names))
    if orphans:
        raise vos_common.DatasetLayoutError(
            f"{ann_dir / (orphans[0] + '.png')}: annotation without a frame in {frame_dir}"
        )

    def load_mask(frame: Path, size: tuple[int, int]) -> np.ndarray | None:
        path = ann_dir / f"{frame.stem}.png"
        if not path.is_file():  # valid/test: only where an object first appears
            return None
        ids = read_mask(path)
        vos_common.check_mask_size(ids, size, path, frame)
        unknown = vos_common.object_ids(set(np.unique(ids).tolist()) - set(objects))
        if unknown:
            raise vos_common.DatasetLayoutError(
                f"{path}: object id(s) {unknown} are not listed for video {vid!r} in "
                f"{meta_path} (listed: {sorted(objects)})"
            )
        return ids

    return {
        "name": vid,
        **vos_common.read_video(paths, load_mask),
        "objects": _objects(objects, names, meta_path, vid),
    }


def _objects(objects: dict[int, dict], names: list[str], meta_path: Path, vid: str) -> list:
    """The `objects` feature: id, category and the index of the first frame meta lists."""
    out = []
    for k, obj in objects.items():
        first = obj["frames"][0] if obj["frames"] else None
        if first is not None and first not in names:
            raise vos_common.DatasetLayoutError(
                f"{meta_path}: video {vid!r} object {k} starts at frame {first!r}, which is not "
                "among its frames"
            )
        index = names.index(first) if first is not None else -1
        out.append({"id": k, "category": obj["category"], "first_frame": index})
    return out
