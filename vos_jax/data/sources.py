"""Video sources for the input pipeline: random-access lists of videos that decode late.

A source is a grain random-access data source (`len`, `[i]`) of `VideoRecord`s. A record holds
each frame and mask still encoded (bytes) or as a file path, so a sampler decodes only the few
frames a training sample uses (a triplet sample needs 3 of a video's 50-100 frames).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vos_jax.io.layouts import DavisLayout

Encoded = bytes | Path


@dataclass(frozen=True)
class VideoRecord:
    """One video: `frames[t]` JPEG (bytes or path); `masks[t]` PNG of object ids, None where the
    frame has no annotation (YouTube-VOS valid, DAVIS test-dev); `keep_ids`: the objects to train
    on (None: all; the others are background, see `sampling.select_objects`)."""

    name: str
    frames: tuple[Encoded, ...]
    masks: tuple[Encoded | None, ...]
    keep_ids: tuple[int, ...] | None = None

    @property
    def annotated(self) -> np.ndarray:
        """[T] bool: which frames have a mask."""
        return np.array([m is not None for m in self.masks], bool)


def _read(item: Encoded) -> bytes:
    return item if isinstance(item, bytes) else Path(item).read_bytes()


def decode_frame(item: Encoded) -> np.ndarray:
    """JPEG/PNG -> [H, W, 3] uint8 RGB (OpenCV's libjpeg-turbo decoder is the fastest here)."""
    data = np.frombuffer(_read(item), np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{item if isinstance(item, Path) else 'frame bytes'}: cannot decode")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def decode_mask(item: Encoded) -> np.ndarray:
    """PNG of object ids (palette or 1-channel) -> [H, W] uint8 ids. PIL, not OpenCV: OpenCV
    would turn a palette PNG into colours instead of ids."""
    with Image.open(io.BytesIO(_read(item))) as image:
        ids = np.array(image)
    return ids[..., 0] if ids.ndim == 3 else ids


def _chosen(names: list[str], sequences: tuple[str, ...], where: str) -> list[str]:
    """`names` in order, only those of `sequences` if any are given (all of them must exist)."""
    missing = sorted(set(sequences) - set(names))
    if missing:
        raise ValueError(f"data.sequences: {missing} not in {where}")
    return [n for n in names if not sequences or n in sequences]


class DavisFolderSource:
    """Videos of a DAVIS-layout folder (the official tree, or the built-in synthetic dataset), the
    split's sequences as listed in `ImageSets/2017/<split>.txt` (see `vos_jax.io.layouts`), or
    only the named `sequences` of them (DAVIS has no object categories: its person videos are
    chosen by name)."""

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        resolution: str = "480p",
        sequences: tuple[str, ...] = (),
    ):
        layout = DavisLayout(Path(root), resolution)
        self._records = []
        names = layout.sequences(split)
        for seq in _chosen(names, tuple(sequences), f"{root} split {split!r}"):
            frames = layout.frame_paths(seq)
            masks = [layout.mask_path(seq, f.stem) for f in frames]
            self._records.append(
                VideoRecord(seq, tuple(frames), tuple(m if m.is_file() else None for m in masks))
            )

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int) -> VideoRecord:
        return self._records[index]


def _check_prepared(name: str, data_dir: Path) -> None:
    """Fail with a message naming the folder if `name` was never built into `data_dir` (TFDS
    would answer with its list of every dataset it knows)."""
    folder = data_dir / name.partition(":")[0]
    if not any(folder.rglob("dataset_info.json")):
        raise FileNotFoundError(
            f"{folder}: no prepared TFDS dataset {name!r} there; build it with "
            "`vos-jax build-dataset`"
        )


class TfdsVideoSource:
    """Videos of a dataset built by the TFDS builders (`davis_vos`, `youtube_vos`), read with
    `tfds.data_source` (array_record, no TensorFlow). Frames and masks are fetched encoded.

    `sequences`: only these videos; `categories`: only videos with objects of these categories
    (YouTube-VOS's meta, e.g. "person"), and of those only these objects. Either one reads every
    record once here, to know which.

    The builders need not be imported: TFDS reads a prepared dataset from its files in `data_dir`.
    """

    def __init__(
        self,
        name: str,
        split: str,
        data_dir: str | os.PathLike,
        sequences: tuple[str, ...] = (),
        categories: tuple[str, ...] = (),
    ):
        import tensorflow_datasets as tfds

        from vos_jax.data.tfds_decoders import RawBytes

        _check_prepared(name, Path(data_dir))
        raw = RawBytes()  # tfds' SkipDecoding has no data_source path for Sequence(Image)
        self._source = tfds.data_source(
            name,
            split=split,
            data_dir=os.fspath(data_dir),
            decoders={"frames": raw, "masks": raw},
            download=False,
        )
        # (index in the dataset, objects to keep or None) of each video of this source
        self._videos = [(i, None) for i in range(len(self._source))]
        if sequences or categories:
            self._videos = self._select(name, tuple(sequences), tuple(categories))

    def _select(self, name: str, sequences: tuple[str, ...], categories: tuple[str, ...]):
        if categories and "objects" not in self._source.dataset_info.features:
            raise ValueError(
                f"data.categories: {name} has no object categories (only youtube_vos has); "
                "choose its videos by name with data.sequences"
            )
        names, videos = [], []
        for i in range(len(self._source)):
            example = self._source[i]
            names.append(_text(example["name"]))
            if sequences and names[-1] not in sequences:
                continue
            keep = None
            if categories:
                objects = example["objects"]
                cats = [_text(c) for c in objects["category"]]
                pairs = zip(objects["id"], cats, strict=True)
                keep = tuple(int(k) for k, c in pairs if c in categories)
                if not keep:
                    continue
            videos.append((i, keep))
        _chosen(names, sequences, f"{name} split")
        if not videos:
            raise ValueError(f"data.categories: no video of {name} has objects of {categories}")
        return videos

    def __len__(self) -> int:
        return len(self._videos)

    def __getitem__(self, index: int) -> VideoRecord:
        if not 0 <= index < len(self):  # array_record raises ValueError; iteration needs this
            raise IndexError(f"video {index} of {len(self)}")
        position, keep = self._videos[index]
        example = self._source[position]
        has_mask = example.get("has_mask", np.ones(len(example["frames"]), bool))
        masks = tuple(m if ok else None for m, ok in zip(example["masks"], has_mask, strict=True))
        return VideoRecord(_text(example["name"]), tuple(example["frames"]), masks, keep)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ImageFolderSource:
    """An image segmentation dataset (`images/<stem>.jpg|png`, `masks/<stem>.png` of ids) as
    one-frame videos, for MaskTrack-style training from static images."""

    def __init__(self, images_dir: str | os.PathLike, masks_dir: str | os.PathLike):
        images = sorted(
            p for p in Path(images_dir).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
        )
        self._records = []
        for image in images:
            mask = Path(masks_dir) / f"{image.stem}.png"
            if not mask.is_file():
                raise FileNotFoundError(f"{mask}: no mask for image {image}")
            self._records.append(VideoRecord(image.stem, (image,), (mask,)))
        if not self._records:
            raise FileNotFoundError(f"{images_dir}: no .jpg/.png images")

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int) -> VideoRecord:
        return self._records[index]
