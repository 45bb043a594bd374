"""Pieces shared by the VOS builders: features, frame and mask checks, layout-error hints.

Everything here runs without TensorFlow: frames are fed to TFDS as their original JPEG bytes and
masks as PNG bytes that PIL encodes (TFDS needs TF only to encode numpy arrays).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from vos_jax.io.layouts import LayoutError
from vos_jax.io.masks import VOID_ID

# The source folders or files are not what the builder expects (the message names the path).
# One class with the layout readers' errors, so that callers catch both alike.
DatasetLayoutError = LayoutError


@contextlib.contextmanager
def layout_hint(expected: str) -> Iterator[None]:
    """Append the expected folder layout to the layout errors raised inside."""
    try:
        yield
    except LayoutError as err:
        raise DatasetLayoutError(f"{err}\nExpected layout:\n{expected}") from None


def video_features(**extra) -> tfds.features.FeaturesDict:
    """The features common to all VOS builders, plus `extra` ones.

    Masks are 1-channel PNGs whose pixel value is the object id (0 background, 255 void), so
    that TFDS's decoder (OpenCV when installed, else PIL) returns ids as uint8 [H, W, 1].
    """
    return tfds.features.FeaturesDict(
        {
            "name": tfds.features.Text(),
            "frame_names": tfds.features.Sequence(tfds.features.Text()),
            "frames": tfds.features.Sequence(
                tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg")
            ),
            "masks": tfds.features.Sequence(
                tfds.features.Image(shape=(None, None, 1), encoding_format="png")
            ),
            "has_mask": tfds.features.Sequence(np.bool_),
            "object_ids": tfds.features.Sequence(np.int32),
            "num_objects": np.int32,
            "height": np.int32,
            "width": np.int32,
            **extra,
        }
    )


def read_frame(path: Path) -> tuple[bytes, tuple[int, int]]:
    """The JPEG file's original bytes and its size (H, W), after a full decode to validate it.

    `Image.verify()` checks nothing for JPEG, so the frame is decoded: a truncated or corrupt
    file fails here, naming the file, instead of deep inside training.
    """
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, mode = image.format, image.mode
            image.load()
            size = (image.height, image.width)
    except (OSError, SyntaxError, ValueError) as err:
        raise DatasetLayoutError(f"{path}: not a readable JPEG frame ({err})") from None
    if fmt != "JPEG":
        raise DatasetLayoutError(f"{path}: expected a JPEG frame, got {fmt or 'unknown'} data")
    if mode != "RGB":  # the frames feature is 3-channel; a grey or CMYK JPEG would decode wrong
        raise DatasetLayoutError(f"{path}: expected an RGB JPEG, got mode {mode!r}")
    return data, size


def check_mask_size(ids: np.ndarray, size: tuple[int, int], mask: Path, frame: Path) -> None:
    """Raise if the mask [H, W] does not match its frame's size (H, W)."""
    if ids.shape != size:
        raise DatasetLayoutError(
            f"{mask}: mask is {ids.shape[0]}x{ids.shape[1]} (HxW) but its frame {frame} is "
            f"{size[0]}x{size[1]}; a mask must have its frame's size"
        )


def encode_mask(ids: np.ndarray) -> bytes:
    """An [H, W] uint8 id map as a 1-channel ('L') PNG, lossless."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(ids, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def object_ids(seen: Iterable[int]) -> list[int]:
    """Sorted object ids among the pixel values `seen`, without background 0 and void 255."""
    return sorted({int(i) for i in seen} - {0, VOID_ID})


def manual_dir(dl_manager) -> Path:
    """`dl_manager.manual_dir` as a Path; a missing or empty one raises DatasetLayoutError."""
    try:
        return Path(os.fspath(dl_manager.manual_dir))
    except AssertionError as err:  # TFDS's message names the dir and the builder's instructions
        raise DatasetLayoutError(str(err)) from None


def read_video(paths: list[Path], load_mask: Callable[[Path, tuple], np.ndarray | None]) -> dict:
    """The per-frame features of one video.

    `load_mask(frame_path, (H, W))` returns the frame's checked [H, W] id map, or None where the
    frame has no annotation (stored as an all-zero mask with has_mask False).
    """
    frames, masks, has_mask, seen = [], [], [], set()
    size = None
    for path in paths:
        data, frame_size = read_frame(path)
        if size is None:
            size = frame_size
        elif frame_size != size:  # clips are stacked into [T, H, W, C] downstream
            raise DatasetLayoutError(
                f"{path}: frame is {frame_size} (HxW) but {paths[0]} is {size}; the frames of a "
                "video must share one size"
            )
        ids = load_mask(path, size)
        has_mask.append(ids is not None)
        if ids is None:
            ids = np.zeros(size, np.uint8)
        seen.update(np.unique(ids).tolist())
        frames.append(data)
        masks.append(encode_mask(ids))
    obj_ids = object_ids(seen)
    return {
        "frame_names": [p.stem for p in paths],
        "frames": frames,
        "masks": masks,
        "has_mask": has_mask,
        "object_ids": obj_ids,
        "num_objects": len(obj_ids),
        "height": size[0],
        "width": size[1],
    }
