"""FEELVOS global and local matching (Voigtlaender et al., CVPR 2019, equations 1-4).

- ``normalized_distance``: eq. 1, d(p, q) = 1 - 2 / (1 + exp(||e_p - e_q||^2)), with the squared
  L2 distance as the official code uses it; 1 - 2 / (1 + e^x) = tanh(x / 2) is finite for any x.
- ``global_matching``: eq. 2, G_o(p) = min over reference pixels q of object o of d(p, q).
- ``local_matching``: eq. 3-4, L_o(p) = the same minimum over previous-frame pixels of object o in a
  (2k+1)^2 window around p (k = 15 at stride 4 in the official code), 1 where there is none.
- ``sample_reference``: at most M = 1024 reference pixels per object, as in training (code).

Shapes: B batch, H W query grid, D embedding, N reference pixels, O objects (background = 0),
M samples per object. Labels are int32 object ids, -1 (or any id outside [0, O)) = ignore.

Both matchings compute squared distances as |q|^2 + |r|^2 - 2 q.r (a matmul), take the per-object
minimum of the squared distance and apply ``normalized_distance`` once at the end (it is monotone).
An object with no candidate keeps +inf, which maps to exactly 1. Memory is bounded by iterating
(``lax.map``) over query chunks (global) or query tiles (local); each iteration is rematerialised
in the backward pass (``jax.checkpoint``), so training stores only the inputs, never the distances.
The public functions are jitted (integer arguments static): one compile per shape, also eagerly.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Bool, Float, Int

from vos_jax.dtypes import accumulation_dtype

# Bytes of temporaries per lax.map step (global: the [B, N, chunk] block; local: a group of tiles'
# windows and distances). Measured at 120x214, D = 100 (global; local with 8x8 tiles): on the
# 2-core CPU 4 MB 1.5-1.65 s, 16 MB 1.9-2.1 s, 64 MB 2.0-2.1 s (local 4-16 tiles a step, all
# within noise); on an H100 4 MB 19 ms, 16 MB 10 ms (1.5 ms), 64 MB 8.2 ms (1.2 ms), 512 MB
# 6.7 ms (0.8 ms). Small steps keep the block in cache on CPU; on GPUs each step pays launches.
_STEP_BYTES = {"cpu": 4 * 2**20}
_STEP_BYTES_ACCELERATOR = 256 * 2**20
# Local matching query tile (rows, cols). At 120x214, k = 15, on the CPU: 8x8 0.12-0.22 s, 4x8
# 0.18-0.29 s, 6x6 0.18-0.29 s, 12x12 0.18-0.26 s, 16x16 0.23-0.43 s, 32x32 0.63 s (noisy, shared
# machine); on an H100 (64 MB steps): 8x8 1.2 ms, 8x16 1.2 ms, 16x16 1.7 ms, 32x32 3.6 ms.
_TILE = (8, 8)
# Explicit f32 matmuls: GPUs otherwise may use TF32 (10-bit mantissa) for float32 dots. Costs
# little on an H100: global 8.3 vs 6.1 ms, local 1.2 vs 1.0 ms.
_PRECISION = lax.Precision.HIGHEST


def _step_bytes() -> int:
    return _STEP_BYTES.get(jax.default_backend(), _STEP_BYTES_ACCELERATOR)


def normalized_distance(sq_dist: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """FEELVOS eq. 1 on squared L2 distances: 1 - 2 / (1 + exp(x)) = tanh(x / 2), in [0, 1]."""
    sq_dist = jnp.asarray(sq_dist)
    return jnp.tanh(sq_dist.astype(accumulation_dtype(sq_dist.dtype)) / 2)


@functools.partial(jax.jit, static_argnames=("num_objects", "max_per_object"))
def sample_reference(
    key: Array, labels: Int[Array, "B N"], num_objects: int, max_per_object: int = 1024
) -> tuple[Int[Array, "B O M"], Bool[Array, "B O M"]]:
    """At most M pixels per object, uniformly without replacement; `valid` marks the real ones.

    One uniform key per pixel (a pixel belongs to one object), then per object the M largest keys
    among its pixels: the top M of i.i.d. keys is a uniform M-subset. Invalid slots hold index 0.
    """
    batch, n = labels.shape
    if n < max_per_object:  # top_k needs at least M candidates; padding is ignored (-1)
        labels = jnp.pad(labels, ((0, 0), (0, max_per_object - n)), constant_values=-1)
    u = jax.random.uniform(key, labels.shape)  # in [0, 1)
    objects = jnp.arange(num_objects, dtype=labels.dtype)
    scores = jnp.where(labels[:, None, :] == objects[None, :, None], u[:, None, :], -1.0)
    top, indices = lax.top_k(scores, max_per_object)  # [B, O, M]
    valid = top >= 0
    return jnp.where(valid, indices, 0).astype(jnp.int32), valid


def _sq_dist(a: Float[Array, "B N D"], b: Float[Array, "B P D"]) -> Float[Array, "B N P"]:
    """Squared distances |a|^2 + |b|^2 - 2 a.b in float32 (at least), clamped at 0 (rounding)."""
    acc = accumulation_dtype(jnp.promote_types(a.dtype, b.dtype))
    dot = jnp.einsum("bnd,bpd->bnp", a, b, precision=_PRECISION, preferred_element_type=acc)
    a_acc, b_acc = a.astype(acc), b.astype(acc)
    a_sq, b_sq = (a_acc * a_acc).sum(-1), (b_acc * b_acc).sum(-1)
    return jnp.maximum(a_sq[:, :, None] + b_sq[:, None, :] - 2 * dot, 0.0)


def _masked_min(d: Float[Array, "B N P"], mask_of, num_objects: int) -> Float[Array, "B P O"]:
    """Per object o, min over axis 1 of d where mask_of(o) (else +inf). A loop over the static O
    reduces over the leading (strided) axis so XLA vectorises along P; measured 1.3-2x faster than
    reducing the last axis and than jax.ops.segment_min (a scatter), without an [N, P, O] temp."""
    return jnp.stack(
        [jnp.where(mask_of(o), d, jnp.inf).min(axis=1) for o in range(num_objects)], axis=-1
    )


@functools.partial(jax.jit, static_argnames=("num_objects", "chunk_size"))
def global_matching(
    query: Float[Array, "B H W D"],
    reference: Float[Array, "B N D"],
    reference_labels: Int[Array, "B N"],
    num_objects: int,
    chunk_size: int | None = None,
) -> Float[Array, "B H W O"]:
    """FEELVOS global matching (eq. 2): per query pixel and object, the minimum normalized
    distance to that object's reference pixels; 1 for an object without reference pixels.

    Query pixels are processed `chunk_size` at a time (None: a [B, N, chunk] block of
    4 MB on CPU, 256 MB on accelerators).
    """
    batch, height, width, dim = query.shape
    n = reference.shape[1]
    pixels = height * width
    if chunk_size is None:
        chunk_size = max(1, _step_bytes() // (4 * batch * max(n, 1)))
    num_chunks = -(-pixels // min(chunk_size, pixels))
    chunk = -(-pixels // num_chunks)  # same count of chunks, least padding
    q = query.reshape(batch, pixels, dim)
    q = jnp.pad(q, ((0, 0), (0, num_chunks * chunk - pixels), (0, 0)))
    q = q.reshape(batch, num_chunks, chunk, dim).transpose(1, 0, 2, 3)
    labels = reference_labels[:, :, None]  # [B, N, 1]

    @jax.checkpoint
    def one_chunk(q_chunk: Float[Array, "B C D"]) -> Float[Array, "B C O"]:
        d = _sq_dist(reference, q_chunk)  # [B, N, C]
        return _masked_min(d, lambda o: labels == o, num_objects)

    m = lax.map(one_chunk, q)  # [chunks, B, C, O]
    m = m.transpose(1, 0, 2, 3).reshape(batch, num_chunks * chunk, num_objects)[:, :pixels]
    return normalized_distance(m.reshape(batch, height, width, num_objects))


def _window_mask(tile_h: int, tile_w: int, k: int) -> np.ndarray:
    """[(Th+2k)*(Tw+2k), Th*Tw] bool: window pixel (u, v) is within k of tile pixel (i, j)."""
    u = np.arange(tile_h + 2 * k)[:, None, None, None]
    v = np.arange(tile_w + 2 * k)[None, :, None, None]
    i = np.arange(tile_h)[None, None, :, None]
    j = np.arange(tile_w)[None, None, None, :]
    inside = (u - i >= 0) & (u - i <= 2 * k) & (v - j >= 0) & (v - j <= 2 * k)
    return inside.reshape((tile_h + 2 * k) * (tile_w + 2 * k), tile_h * tile_w)


def _local_tiled(query, previous, labels, num_objects: int, k: int, tile=_TILE):
    """Dilation-1 local matching, minimum squared distance [B, H, W, O] (+inf: none).

    Each Th x Tw query tile can only reach a (Th+2k) x (Tw+2k) window of the previous frame, so
    one [window, D] x [D, tile] matmul gives all its candidate distances; a static mask keeps each
    query pixel's own (2k+1)^2 square. Out-of-frame positions come from -1 padded labels. Work is
    (Th+2k)(Tw+2k)/(2k+1)^2 = 1.5x the direct sum for 8x8 tiles at k = 15, done by BLAS/MXU.
    """
    batch, height, width, dim = query.shape
    th, tw = min(tile[0], height), min(tile[1], width)
    ny, nx = -(-height // th), -(-width // tw)
    pad_h, pad_w = ny * th - height, nx * tw - width
    q = jnp.pad(query, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
    q = q.reshape(batch, ny, th, nx, tw, dim).transpose(0, 1, 3, 2, 4, 5)
    q = q.reshape(batch * ny * nx, th * tw, dim)
    prev = jnp.pad(previous, ((0, 0), (k, k + pad_h), (k, k + pad_w), (0, 0)))
    lab = jnp.pad(labels, ((0, 0), (k, k + pad_h), (k, k + pad_w)), constant_values=-1)
    wh, ww = th + 2 * k, tw + 2 * k
    inside = jnp.asarray(_window_mask(th, tw, k))
    # Equal groups of tiles per lax.map step (a remainder would compile a second body), the
    # tile count padded by repeating the last tile. Tile t = (b, y, x) in row-major order; its
    # window starts at (y*Th, x*Tw) of the padded frame.
    tiles = batch * ny * nx
    group = max(1, min(tiles, _step_bytes() // (4 * wh * ww * (dim + th * tw))))
    steps = -(-tiles // group)
    group = -(-tiles // steps)
    t = jnp.minimum(jnp.arange(steps * group), tiles - 1)
    b, y, x = t // (ny * nx), (t // nx) % ny, t % nx

    @jax.checkpoint
    def one_tile(args) -> Float[Array, "T O"]:
        q_tile, b, y, x = args
        win = lax.dynamic_slice(prev, (b, y * th, x * tw, 0), (1, wh, ww, dim))
        win_lab = lax.dynamic_slice(lab, (b, y * th, x * tw), (1, wh, ww)).reshape(1, wh * ww, 1)
        d = _sq_dist(win.reshape(1, wh * ww, dim), q_tile[None])  # [1, window, tile]
        return _masked_min(d, lambda o: inside & (win_lab == o), num_objects)[0]

    q = jnp.pad(q, ((0, steps * group - tiles), (0, 0), (0, 0)))
    m = lax.map(one_tile, (q, b, y, x), batch_size=group)[:tiles]  # [B*ny*nx, Th*Tw, O]
    m = m.reshape(batch, ny, nx, th, tw, num_objects).transpose(0, 1, 3, 2, 4, 5)
    return m.reshape(batch, ny * th, nx * tw, num_objects)[:, :height, :width]


@functools.partial(jax.jit, static_argnames=("num_objects", "max_displacement", "dilation", "tile"))
def local_matching(
    query: Float[Array, "B H W D"],
    previous: Float[Array, "B H W D"],
    previous_labels: Int[Array, "B H W"],
    num_objects: int,
    max_displacement: int = 15,
    dilation: int = 1,
    *,
    tile: tuple[int, int] = _TILE,
) -> Float[Array, "B H W O"]:
    """FEELVOS local matching (eq. 3-4): per query pixel p and object o, the minimum normalized
    distance to previous-frame pixels of object o at p + (dy, dx) * dilation, |dy|, |dx| <= k;
    1 where the window holds none (outside the frame counts as none).

    With dilation d, p only meets pixels of its own residue class (p mod d), and on each class's
    sub-grid the window is a plain dilation-1 window: the d*d sub-grids are matched as a batch.
    `tile` is the query tile of the blocked matmul (a speed knob; any size gives the same result).
    """
    if dilation < 1 or max_displacement < 0:
        raise ValueError(f"need dilation >= 1, max_displacement >= 0: {dilation, max_displacement}")
    batch, height, width, dim = query.shape
    s = dilation
    hs, ws = -(-height // s), -(-width // s)  # sub-grid size; padded pixels are ignored (-1)

    def split(a, fill=0):
        pad = [(0, 0), (0, hs * s - height), (0, ws * s - width)] + [(0, 0)] * (a.ndim - 3)
        a = jnp.pad(a, pad, constant_values=fill)
        a = jnp.moveaxis(a.reshape(batch, hs, s, ws, s, *a.shape[3:]), (2, 4), (1, 2))
        return a.reshape(batch * s * s, hs, ws, *a.shape[5:])  # [(B, sy, sx), Hs, Ws, ...]

    m = _local_tiled(
        split(query),
        split(previous),
        split(previous_labels, -1),
        num_objects,
        max_displacement,
        tile,
    )
    m = jnp.moveaxis(m.reshape(batch, s, s, hs, ws, num_objects), (1, 2), (2, 4))
    m = m.reshape(batch, hs * s, ws * s, num_objects)[:, :height, :width]
    return normalized_distance(m)
