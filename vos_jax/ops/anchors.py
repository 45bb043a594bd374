"""SiamRPN / SiamMask anchors on the score map and the box arithmetic around them (official
foolwood/SiamMask utils/anchors.py, tools/test.py `generate_anchor`, datasets/siam_mask_dataset.py
`AnchorTargetLayer`).

Anchors are (cx, cy, w, h) relative to the centre of the search crop, one per (anchor k, row, col)
in that order (the official flattening: index k * s * s + row * s + col), centred on the grid
-(s // 2) * stride .. (s // 2) * stride. Anchor k has the ratio h / w = ratios[k]: w =
int(sqrt(stride**2 / r)) * scale, h = int(w_base * r) * scale (with the official integer
truncation: ratios 0.33, 0.5, 1, 2, 3 at stride 8, scale 8 give (104, 32), (88, 40), (64, 64),
(40, 80), (32, 96)).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

DAVIS_RATIOS = (0.33, 0.5, 1.0, 2.0, 3.0)


def anchor_shapes(stride: int = 8, ratios=DAVIS_RATIOS, scales=(8,)) -> np.ndarray:
    """[A, 2] anchor (w, h), ratios outer, scales inner (official `Anchors.generate_anchors`)."""
    shapes = []
    for r in ratios:
        ws = int(math.sqrt(stride * stride / r))
        hs = int(ws * r)
        shapes.extend((ws * s, hs * s) for s in scales)
    return np.asarray(shapes, np.float32)


def anchor_grid(score_size: int, stride: int = 8, ratios=DAVIS_RATIOS, scales=(8,)) -> np.ndarray:
    """[A, s, s, 4] anchors (cx, cy, w, h) around the crop centre (official `generate_anchor`)."""
    shapes = anchor_shapes(stride, ratios, scales)
    offsets = (np.arange(score_size) - score_size // 2) * stride
    cy, cx = np.meshgrid(offsets, offsets, indexing="ij")
    grid = np.zeros((len(shapes), score_size, score_size, 4), np.float32)
    grid[..., 0], grid[..., 1] = cx, cy
    grid[..., 2:] = shapes[:, None, None, :]
    return grid


def decode(
    delta: Float[ArrayLike, "... 4"], anchors: Float[ArrayLike, "... 4"]
) -> Float[Array, "... 4"]:
    """RPN deltas (dx, dy, dw, dh) on anchors (cx, cy, w, h) -> boxes (cx, cy, w, h)."""
    delta, anchors = jnp.asarray(delta), jnp.asarray(anchors)
    return jnp.stack(
        [
            delta[..., 0] * anchors[..., 2] + anchors[..., 0],
            delta[..., 1] * anchors[..., 3] + anchors[..., 1],
            jnp.exp(delta[..., 2]) * anchors[..., 2],
            jnp.exp(delta[..., 3]) * anchors[..., 3],
        ],
        axis=-1,
    )


def encode(
    boxes: Float[ArrayLike, "... 4"], anchors: Float[ArrayLike, "... 4"]
) -> Float[Array, "... 4"]:
    """The inverse of `decode`: the regression target of box (cx, cy, w, h) on each anchor
    (official `AnchorTargetLayer`: delta = (tcx - cx) / w, (tcy - cy) / h, log(tw / w),
    log(th / h))."""
    boxes, anchors = jnp.asarray(boxes), jnp.asarray(anchors)
    return jnp.stack(
        [
            (boxes[..., 0] - anchors[..., 0]) / anchors[..., 2],
            (boxes[..., 1] - anchors[..., 1]) / anchors[..., 3],
            jnp.log(boxes[..., 2] / anchors[..., 2]),
            jnp.log(boxes[..., 3] / anchors[..., 3]),
        ],
        axis=-1,
    )


def iou(a: Float[ArrayLike, "*_a 4"], b: Float[ArrayLike, "*_b 4"]) -> Float[Array, "*_n"]:
    """IoU of boxes (cx, cy, w, h) as the official `IoU` of corner boxes (x1 = cx - w / 2, ...,
    areas w * h, no +1); shapes broadcast."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    ax0, ay0 = a[..., 0] - a[..., 2] / 2, a[..., 1] - a[..., 3] / 2
    bx0, by0 = b[..., 0] - b[..., 2] / 2, b[..., 1] - b[..., 3] / 2
    ax1, ay1, bx1, by1 = ax0 + a[..., 2], ay0 + a[..., 3], bx0 + b[..., 2], by0 + b[..., 3]
    w = jnp.maximum(jnp.minimum(ax1, bx1) - jnp.maximum(ax0, bx0), 0.0)
    h = jnp.maximum(jnp.minimum(ay1, by1) - jnp.maximum(ay0, by0), 0.0)
    inter = w * h
    return inter / (a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter)


def cosine_window(score_size: int) -> np.ndarray:
    """[s, s] outer product of Hanning windows (official `windowing = 'cosine'`)."""
    return np.outer(np.hanning(score_size), np.hanning(score_size)).astype(np.float32)
