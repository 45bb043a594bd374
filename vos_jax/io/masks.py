"""Palette PNG masks: pixel value = object id (0 background, 255 void), DAVIS colour palette."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

VOID_ID = 255


def object_ids(mask: np.ndarray) -> np.ndarray:
    """The object ids present in a uint8 id map, sorted, without background and void (one
    bincount: faster than np.unique's sort on large masks)."""
    counts = np.bincount(mask.ravel(), minlength=256)
    return np.flatnonzero(counts[1:VOID_ID]) + 1


class MaskFileError(ValueError):
    """A mask file is missing or not what the DAVIS conventions expect."""


def davis_palette() -> np.ndarray:
    """The 256-entry palette of the DAVIS / YouTube-VOS annotations (the PASCAL VOC bit pattern).

    Returns a [256, 3] uint8 array; id 255 is the void colour (224, 224, 192) as in DAVIS.
    """
    ids = np.arange(256)
    palette = np.zeros((256, 3), np.uint8)
    for bit in range(8):
        for channel in range(3):
            palette[:, channel] |= (((ids >> (3 * bit + channel)) & 1) << (7 - bit)).astype(
                np.uint8
            )
    return palette


_PALETTE = davis_palette().ravel().tolist()


def write_mask(path: str | os.PathLike, ids: np.ndarray) -> None:
    """Write an [H, W] array of object ids (0..255) as a palette PNG with the DAVIS palette."""
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"{path}: expected an [H, W] id map, got shape {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() > 255):
        raise ValueError(f"{path}: object ids must lie in 0..255")
    image = Image.fromarray(ids.astype(np.uint8), mode="P")
    image.putpalette(_PALETTE)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=False)


def _pixels(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """(the PNG's pixel values as `np.array(Image.open(path))` gives them, its PIL mode)."""
    path = Path(path)
    if not path.is_file():
        raise MaskFileError(f"{path}: mask file not found")
    try:
        with Image.open(path) as image:
            return np.array(image), image.mode
    except OSError as err:
        raise MaskFileError(f"{path}: cannot read as PNG ({err})") from None


def read_mask_and_mode(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """-> ([H, W] uint8 pixel values, PIL mode) of a palette ('P') or grayscale ('L', '1') PNG,
    the values as the official DAVIS toolkit reads them (`np.array(Image.open(path))`: in both
    'P' and 'L' the pixel value is the object id; '1' gives 0/1). Other modes (RGB...) are refused:
    a plain `np.array` would silently misread their colours as ids."""
    ids, mode = _pixels(path)
    if mode not in ("P", "L", "1"):
        raise MaskFileError(
            f"{path}: expected a palette (indexed, mode 'P') or 8-bit grayscale (mode 'L') PNG "
            f"whose pixel values are object ids, got mode {mode!r}"
        )
    return ids.astype(np.uint8, copy=False), mode


def read_mask(path: str | os.PathLike, allow_grayscale: bool = False) -> np.ndarray:
    """Read a palette PNG as an [H, W] uint8 id map.

    DAVIS results and 2017 ground truth are palette ('P') images whose pixel values are object ids.
    An RGB PNG would be silently misread as ids by a plain `np.array(Image.open(...))`, so it is an
    error here. `allow_grayscale` accepts 'L'/'1' images holding only 0/255 (DAVIS 2016's ground
    truth): 255 becomes object 1.
    """
    ids, mode = _pixels(path)
    if mode == "P":
        return ids.astype(np.uint8, copy=False)
    if allow_grayscale and mode in ("L", "1"):
        if mode == "L" and not np.isin(ids, (0, 255)).all():
            raise MaskFileError(
                f"{path}: a grayscale mask must hold only 0 and 255 (the DAVIS 2016 format); "
                "object ids belong in a palette (mode 'P') PNG"
            )
        return (ids > 0).astype(np.uint8)
    raise MaskFileError(
        f"{path}: expected a palette (indexed, mode 'P') PNG whose pixel values are object ids, "
        f"got mode {mode!r}"
    )
