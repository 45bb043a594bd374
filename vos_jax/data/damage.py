"""FEELVOS's mask damaging: the given previous-frame mask made imperfect, as at test time.

Official: feelvos/utils/mask_damaging.py:25-176, used in training at
feelvos/utils/embedding_utils.py:688-691 as `damage_masks(prev_frame_labels, dilate=False)`, on
every sample when `damage_initial_previous_frame_mask` is set (default False, train.py:191-194).
Per object (non-zero label), in a random order so that later objects overwrite earlier ones
(:59-68): shift, then scale, then rotate (:87-94); no dilation. Background is not damaged.

Official damages the stride-4 labels; here the full-resolution mask is damaged and the loss then
samples it at stride 4. Every step is resolution-equivariant (shift in units of the object's size,
scale and rotation about points that scale with the image), so both agree up to rounding.
"""

from __future__ import annotations

import cv2
import numpy as np

from vos_jax.io.masks import object_ids

SHIFT = 0.05  # _shift_mask max_shift_factor (mask_damaging.py:98): of sqrt(h * w) per axis
SCALE = 0.025  # _scale_mask scale_amount (:120): factor uniform in [1 - SCALE, 1 + SCALE]
ROTATE = 3.0  # _rotate_mask max_rot_degrees (:142): uniform in +-ROTATE degrees


def damage_masks(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Damaged id map [H, W] uint8 of mask [H, W] (0 background, 255 void): every object
    shifted, scaled and rotated on its own (`damage_object`), pasted in a random order. Void and
    background become 0, as the model never gets void as a previous mask."""
    damaged = np.zeros(mask.shape, np.uint8)
    for k in rng.permutation(object_ids(mask)):  # mask_damaging.py:62: random depth order
        damaged[damage_object(mask == k, rng)] = k
    return damaged


def damage_object(obj: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One object's bool mask [H, W] shifted, scaled and rotated (mask_damaging.py:71-95)."""
    for step in (_shift, _scale, _rotate):
        if not obj.any():  # pushed out of the frame: nothing left to damage
            break
        obj = step(obj, rng)
    return obj


def _shift(obj: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """mask_damaging.py:98-117: offset U(-s, s) per axis (rows, then columns), s = SHIFT *
    sqrt(h w) with h, w the bounding box's extents (max - min); nearest-neighbour, zeros shifted
    in (official `scipy.ndimage.shift(order=0)`; OpenCV's warp is the same map, 8x faster)."""
    _, _, w, h = cv2.boundingRect(obj.view(np.uint8))
    size = np.sqrt((h - 1) * (w - 1))
    dy, dx = rng.uniform(-size * SHIFT, size * SHIFT, 2)
    height, width = obj.shape
    mat = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    shifted = cv2.warpAffine(obj.view(np.uint8), mat, (width, height), flags=cv2.INTER_NEAREST)
    return shifted.view(bool)


def _scale(obj: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """mask_damaging.py:120-139: factor U(1 - SCALE, 1 + SCALE). Official quirk, kept: the
    centre is half the box's extents, (0.5 (max - min)) per axis (:131-132), not the box's
    centre, so the object also moves by up to SCALE times its distance from that point."""
    _, _, w, h = cv2.boundingRect(obj.view(np.uint8))
    centre = (0.5 * (w - 1), 0.5 * (h - 1))  # (x, y)
    factor = rng.uniform(1.0 - SCALE, 1.0 + SCALE)
    return _warp(obj, cv2.getRotationMatrix2D(centre, 0.0, factor))


def _rotate(obj: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """mask_damaging.py:142-160: U(-ROTATE, ROTATE) degrees about the image centre
    (0.5 W, 0.5 H). skimage's positive angle turns the other way from OpenCV's, hence -angle."""
    height, width = obj.shape
    angle = rng.uniform(-ROTATE, ROTATE)
    return _warp(obj, cv2.getRotationMatrix2D((0.5 * width, 0.5 * height), -angle, 1.0))


def _warp(obj: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """As official `skimage.transform.warp(mask, inverse) > 0.5`: bilinear on the 0/1 mask,
    zeros outside, thresholded at one half (pixel centres on integers in both libraries)."""
    height, width = obj.shape
    warped = cv2.warpAffine(
        obj.astype(np.float32), forward, (width, height), flags=cv2.INTER_LINEAR
    )
    return warped > 0.5
