"""Square crops around a target and their way back into the frame, as the official SiamMask
tracker takes them (tools/test.py `get_subwindow_tracking`, `crop_back`), for one crop of one
frame; `jax.vmap` them over targets and videos.

`subwindow`: the `size` x `size` pixel window centred (rounded, half to even as Python's `round`)
on `centre`, padded outside the frame with the frame's average colour truncated to uint8 (the
official code writes the float mean into a uint8 array), resized to `out` x `out` exactly as
`cv2.resize` (INTER_LINEAR) resizes uint8 images: half-pixel centres, 2 taps however large the
shrink, 11-bit fixed-point weights and OpenCV's integer rounding (tests/ops/test_crops.py
compares it with OpenCV pixel for pixel).

`paste_back`: `cv2.warpAffine` of an `m` x `m` map onto the frame (INTER_LINEAR, BORDER_CONSTANT
with `padding`) with the official affine map, bilinear at float32 source coordinates as OpenCV
>= 4.11 computes them (the fixture's OpenCV; tests/ops/test_crops.py compares with the installed
one). Older OpenCV rounded source coordinates to 1/32 pixel (INTER_TAB_SIZE), which moves the
probabilities by up to 0.02 near steep mask edges.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int, UInt8

COEF_SCALE = 2048  # OpenCV INTER_RESIZE_COEF_SCALE: 11-bit interpolation weights


def _float32_quotient(num, den: int):
    """(floor, fraction) of float32(num / den), the quotient of int32 `num` (|num| < 2^24) by the
    positive constant `den` < 4096 correctly rounded to float32 (24 significant bits), in
    integer arithmetic: XLA turns a float division by a constant into a product with its
    reciprocal, which rounds differently."""
    q, r = jnp.floor_divide(num, den), jnp.remainder(num, den)  # num = q den + r, 0 <= r < den
    # 24 bits of r / den, in two 12-bit long-division steps (int32 never overflows), and a
    # sticky bit for the rest.
    t1, r1 = (r << 12) // den, (r << 12) % den
    t2, r2 = (r1 << 12) // den, (r1 << 12) % den
    bits = (t1 << 12) | t2
    # An integer part of e bits leaves 24 - e fraction bits; below 1 (q <= 0 here means a value
    # in [-1, 1)), float32 keeps them all (an error under 2^-24 cannot move the 11-bit weights).
    e = jnp.where(q > 0, 32 - jax.lax.clz(jnp.maximum(q, 1)), 0)
    drop = jnp.clip(e, 0, 24)
    kept = bits >> drop
    rest = bits - (kept << drop)
    half = jnp.where(drop > 0, 1 << jnp.maximum(drop - 1, 0), 0)
    sticky = r2 != 0
    up = (drop > 0) & ((rest > half) | ((rest == half) & (sticky | ((kept & 1) == 1))))
    kept = kept + up.astype(jnp.int32)
    scale = 1 << (24 - drop)
    whole = q + kept // scale
    fraction = (kept % scale).astype(jnp.float32) / scale.astype(jnp.float32)  # exact: a power
    return whole, fraction


def _linear_taps(out: int, size, origin, clamp: bool):
    """OpenCV INTER_LINEAR taps of `out` samples over `size` source pixels starting at `origin`:
    (index0, index1, weight0, weight1), weights in 1/2048. The sample position (d + 0.5) * size /
    out - 0.5 is a float32 (OpenCV casts it so), so its fraction has fewer bits the larger the
    position. Columns clamp the position to the source (weight 2048 on the edge pixel); rows
    keep the fraction and clamp only the indices (OpenCV's `resize` does the same)."""
    d = jnp.arange(out, dtype=jnp.int32)
    whole, frac = _float32_quotient((2 * d + 1) * size - out, 2 * out)
    last = size - 1
    if clamp:
        frac = jnp.where(whole < 0, 0.0, frac)
        whole = jnp.maximum(whole, 0)
        frac = jnp.where(whole >= last, 0.0, frac)
        whole = jnp.minimum(whole, last)
    w0 = jnp.round((1.0 - frac) * COEF_SCALE).astype(jnp.int32)
    w1 = jnp.round(frac * COEF_SCALE).astype(jnp.int32)
    i0 = origin + jnp.clip(whole, 0, last)
    i1 = origin + jnp.clip(whole + 1, 0, last)
    return i0, i1, w0, w1


def subwindow(
    frame: UInt8[ArrayLike, "H W 3"],
    centre: Float[ArrayLike, 2],
    size: Int[ArrayLike, ""],
    out: int,
    average: Float[ArrayLike, 3],
) -> Float[Array, "out out 3"]:
    """The official `get_subwindow_tracking(frame, centre (x, y), out, size, average)` (module
    docstring), as float values 0..255."""
    height, width = frame.shape[:2]
    size = jnp.maximum(jnp.asarray(size, jnp.int32), 1)
    half = (size.astype(jnp.float32) + 1.0) / 2.0
    origin = jnp.round(jnp.asarray(centre, jnp.float32) - half).astype(jnp.int32)  # (x, y)
    y0, y1, b0, b1 = _linear_taps(out, size, origin[1], clamp=False)
    x0, x1, a0, a1 = _linear_taps(out, size, origin[0], clamp=True)
    pad = jnp.floor(jnp.asarray(average, jnp.float32)).astype(jnp.int32)  # uint8 write

    def pixels(ys, xs):
        inside = (ys >= 0)[:, None] & (ys < height)[:, None] & (xs >= 0) & (xs < width)
        values = frame[jnp.clip(ys, 0, height - 1)][:, jnp.clip(xs, 0, width - 1)]
        return jnp.where(inside[..., None], values.astype(jnp.int32), pad)

    # Horizontal pass in integers (x 2048), then OpenCV's vectorised vertical pass: each row
    # sum >> 4, times its 16-bit weight, high 16 bits, added, rounded >> 2 (VResizeLinearVec).
    a0, a1 = a0[None, :, None], a1[None, :, None]
    top = pixels(y0, x0) * a0 + pixels(y0, x1) * a1
    bottom = pixels(y1, x0) * a0 + pixels(y1, x1) * a1
    mul_hi = lambda row, w: ((row >> 4) * w[:, None, None]) >> 16
    value = (mul_hi(top, b0) + mul_hi(bottom, b1) + 2) >> 2
    return jnp.clip(value, 0, 255).astype(jnp.float32)


def paste_back(
    crop: Float[ArrayLike, "m m"],
    box: Float[ArrayLike, 4],
    height: int,
    width: int,
    padding: float = -1.0,
) -> Float[Array, "height width"]:
    """`crop`, an m x m map of the frame box (x, y, w, h), in frame coordinates with `padding`
    outside: the official `crop_back(crop, back_box, (width, height))` with its back box
    (-x s, -y s, width s, height s), s = m / w. Its affine map stretches by (n - 1) / n: frame
    pixel x samples the crop at (x n / (n - 1) - x0) s (n = width or height), not (x - x0) s."""
    crop = jnp.asarray(crop, jnp.float32)
    m = crop.shape[0]
    box = jnp.asarray(box, jnp.float32)
    scale = m / box[2]
    padded = jnp.pad(crop, 1, constant_values=padding)  # samples outside: the border value

    def taps(n, start):
        s = jnp.arange(n, dtype=jnp.float32) * (n * scale / (n - 1)) - start * scale
        whole = jnp.floor(s)
        index = whole.astype(jnp.int32) + 1  # + 1: the padding row / column
        return jnp.clip(index, 0, m + 1), jnp.clip(index + 1, 0, m + 1), s - whole

    y0, y1, fy = taps(height, box[1])
    x0, x1, fx = taps(width, box[0])
    rows = padded[y0] * (1 - fy)[:, None] + padded[y1] * fy[:, None]  # [height, m + 2]
    return rows[:, x0] * (1 - fx) + rows[:, x1] * fx


def crop_box(
    image: Float[ArrayLike, "H W C"],
    box: Float[ArrayLike, 4],
    out: int,
    padding: Float[ArrayLike, " C"] | float = 0.0,
) -> Float[Array, "out out C"]:
    """The official training crop (datasets/siam_mask_dataset.py `crop_hwc`): the frame box
    (x0, y0, x1, y1) onto an `out` x `out` image, corners onto the corner pixels, bilinear, with
    `padding` outside the frame. Boxes need not be square (the augmentation scales x and y
    apart). Computed in the image's float dtype (float32 for integer images)."""
    image = jnp.asarray(image)
    if not jnp.issubdtype(image.dtype, jnp.floating):
        image = image.astype(jnp.float32)
    height, width = image.shape[:2]
    box = jnp.asarray(box, image.dtype)
    t = jnp.arange(out, dtype=image.dtype) / (out - 1)
    ys = box[1] + t * (box[3] - box[1])
    xs = box[0] + t * (box[2] - box[0])

    def taps(s, n):
        whole = jnp.floor(s)
        frac = s - whole
        i0 = whole.astype(jnp.int32)
        return i0, i0 + 1, frac

    y0, y1, fy = taps(ys, height)
    x0, x1, fx = taps(xs, width)
    pad = jnp.broadcast_to(jnp.asarray(padding, image.dtype), (image.shape[2],))

    def pixels(yi, xi):
        inside = ((yi >= 0) & (yi < height))[:, None] & ((xi >= 0) & (xi < width))[None, :]
        values = image[jnp.clip(yi, 0, height - 1)][:, jnp.clip(xi, 0, width - 1)]
        return jnp.where(inside[..., None], values, pad)

    fy, fx = fy[:, None, None], fx[None, :, None]
    top = pixels(y0, x0) * (1 - fx) + pixels(y0, x1) * fx
    bottom = pixels(y1, x0) * (1 - fx) + pixels(y1, x1) * fx
    return top * (1 - fy) + bottom * fy
