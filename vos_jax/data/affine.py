"""RVOS's training augmentation: one random affine map and one flip per clip.

Official (imatge-upc/rvos, src/dataloader/dataset.py:73-162): every frame is resized to the
input size (bilinear image, nearest annotation, :126-128; 240x427 DAVIS, 256x448 YouTube-VOS),
flipped left-right with p = 0.5 drawn once per clip (:102, 136-139), then warped by an affine
matrix drawn once per clip (:144-151) with nearest-neighbour sampling for image AND annotation
(`Affine(tf_matrix, interp='nearest')`). No crop and no colour jitter.

The matrix (`RandomAffine`, davis2017.py:78-91, transforms.py:62-89) is M = R T Sh Z, in
(row, column) pixel coordinates about the image centre, mapping each output pixel to the input
pixel it samples; out-of-range coordinates are clamped, i.e. edge replication for the
annotation too (transforms/utils.py:67-137). The ranges are the official defaults
`-rotation 10 -translation 0.1 -shear 0.1 -zoom 0.7` (args.py:88-93).
"""

from __future__ import annotations

import cv2
import numpy as np

ROTATION = 10.0  # -rotation: degrees, uniform in +-ROTATION (transforms.py:212, 300-303)
TRANSLATION = 0.1  # -translation: fraction of height and of width, uniform +- (:355-357, 456-461)
# -shear: uniform +-0.1, which `Shear` converts as DEGREES (theta = pi * value / 180,
# transforms.py:573-576) although its docstring says radians, so the shear is at most 0.1 degree:
# next to nothing. Kept as official.
SHEAR = 0.1
ZOOM = 0.7  # -zoom: zoom_range = (zoom, max(2 zoom, 1)) (davis2017.py:78-91)
ZOOM_RANGE = (ZOOM, max(2 * ZOOM, 1.0))  # zx, zy independent (:622-623); < 1 zooms in


def sample_affine(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A 3x3 matrix M for an image of size (H, W), official convention: output pixel p (row,
    column) samples the input at M[:2, :2] (p - c) + M[:2, 2] + c, c = ((H - 1) / 2, (W - 1) / 2).
    Draws in the official order: rotation, translation (height, width), shear, zoom (zx, zy)."""
    height, width = size
    theta = np.deg2rad(rng.uniform(-ROTATION, ROTATION))
    shift_h, shift_w = rng.uniform(-TRANSLATION, TRANSLATION, 2)
    shear = np.deg2rad(rng.uniform(-SHEAR, SHEAR))
    zx, zy = rng.uniform(*ZOOM_RANGE, 2)
    cos, sin = np.cos(theta), np.sin(theta)
    rotate = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    translate = np.array([[1.0, 0.0, shift_h * height], [0.0, 1.0, shift_w * width], [0, 0, 1]])
    shear_mat = np.array([[1.0, -np.sin(shear), 0.0], [0.0, np.cos(shear), 0.0], [0, 0, 1]])
    zoom = np.diag([zx, zy, 1.0])
    return rotate @ translate @ shear_mat @ zoom


def warp_clip(
    frames: np.ndarray, masks: np.ndarray, matrix: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """frames [T, H, W, 3] and masks [T, H, W] all warped by the official-convention `matrix`
    (see `sample_affine`): nearest-neighbour, edge replication (as official's clamping)."""
    _, height, width = masks.shape
    swap = np.array([[0.0, 1.0], [1.0, 0.0]])  # (row, col) <-> (x, y)
    linear = swap @ matrix[:2, :2] @ swap
    centre = np.array([(width - 1) / 2, (height - 1) / 2])  # official (W / 2 - 0.5, H / 2 - 0.5)
    offset = swap @ matrix[:2, 2] + centre - linear @ centre
    inverse = np.concatenate([linear, offset[:, None]], axis=1)  # output (x, y) -> input (x, y)
    flags = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    size, edge = (width, height), cv2.BORDER_REPLICATE

    def warp(image):
        return cv2.warpAffine(image, inverse, size, flags=flags, borderMode=edge)

    return np.stack([warp(f) for f in frames]), np.stack([warp(m) for m in masks])


def random_affine_clip(
    frames: np.ndarray,
    masks: np.ndarray,
    size: tuple[int, int],
    rng: np.random.Generator,
    flip: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The official clip augmentation: frames [T, H, W, 3], masks [T, H, W] -> [T, h, w, 3],
    [T, h, w] at size (h, w): resize (bilinear frames, nearest masks), flip left-right with
    p = 0.5 if `flip`, then one `sample_affine` matrix for every frame. The flip is drawn first,
    whether used or not, as official draws it at the start of each clip (dataset.py:102)."""
    flipped = rng.random() < 0.5 and flip
    matrix = sample_affine(rng, size)
    out_h, out_w = size
    # cv2 bilinear, where official's scipy.misc.imresize (PIL) also low-pass filters when
    # shrinking; at DAVIS 480p -> 240x427 (2x) both average neighbouring pixels.
    frames = np.stack(
        [cv2.resize(f, (out_w, out_h), interpolation=cv2.INTER_LINEAR) for f in frames]
    )
    masks = np.stack(
        [cv2.resize(m, (out_w, out_h), interpolation=cv2.INTER_NEAREST) for m in masks]
    )
    if flipped:
        frames, masks = frames[:, :, ::-1], masks[:, :, ::-1]
    return warp_clip(np.ascontiguousarray(frames), np.ascontiguousarray(masks), matrix)
