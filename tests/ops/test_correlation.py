"""Depthwise cross-correlation and the anchor arithmetic against brute-force NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vos_jax.ops import anchors
from vos_jax.ops.correlation import depthwise_xcorr


@pytest.mark.parametrize("shifted_sum", [False, True])
def test_depthwise_xcorr_equals_a_float64_loop(shifted_sum):
    """Both paths (the grouped convolution of GPU/TPU, the CPU's shifted sum): values against a
    float64 loop, gradients against each other, bfloat16 in and out."""
    rng = np.random.default_rng(0)
    search, kernel = rng.normal(size=(3, 9, 11, 4)), rng.normal(size=(3, 5, 4, 4))
    want = np.zeros((3, 5, 8, 4))
    for b in range(3):
        for y in range(5):
            for x in range(8):
                want[b, y, x] = np.sum(search[b, y : y + 5, x : x + 4] * kernel[b], axis=(0, 1))
    search, kernel = search.astype(np.float32), kernel.astype(np.float32)
    got = depthwise_xcorr(search, kernel, shifted_sum)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)

    def grads(shifted):
        loss = lambda s, k: jnp.sum(jnp.sin(depthwise_xcorr(s, k, shifted)))
        return jax.grad(loss, (0, 1))(search, kernel)

    for g, w in zip(grads(shifted_sum), grads(not shifted_sum), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)
    half = depthwise_xcorr(search.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16), shifted_sum)
    assert half.dtype == jnp.bfloat16
    np.testing.assert_allclose(half.astype(np.float32), want, rtol=0.05, atol=0.15)


def test_anchors_are_the_official_ones():
    shapes = anchors.anchor_shapes(8, (0.33, 0.5, 1, 2, 3), (8,))
    np.testing.assert_array_equal(shapes, [[104, 32], [88, 40], [64, 64], [40, 80], [32, 96]])
    grid = anchors.anchor_grid(25, 8)
    assert grid.shape == (5, 25, 25, 4)
    # official flattening: index k * 625 + row * 25 + col, centre x = -96 + 8 col
    flat = grid.reshape(-1, 4)
    np.testing.assert_array_equal(flat[2 * 625 + 3 * 25 + 7], [-96 + 56, -96 + 24, 64, 64])


def test_encode_inverts_decode_and_iou_is_the_corner_iou():
    rng = np.random.default_rng(1)
    a = np.concatenate([rng.uniform(-50, 50, (20, 2)), rng.uniform(5, 80, (20, 2))], 1)
    b = np.concatenate([rng.uniform(-50, 50, (20, 2)), rng.uniform(5, 80, (20, 2))], 1)
    a, b = a.astype(np.float32), b.astype(np.float32)
    np.testing.assert_allclose(anchors.decode(anchors.encode(b, a), a), b, rtol=1e-4, atol=1e-3)
    x0 = np.maximum(a[:, 0] - a[:, 2] / 2, b[:, 0] - b[:, 2] / 2)
    x1 = np.minimum(a[:, 0] + a[:, 2] / 2, b[:, 0] + b[:, 2] / 2)
    y0 = np.maximum(a[:, 1] - a[:, 3] / 2, b[:, 1] - b[:, 3] / 2)
    y1 = np.minimum(a[:, 1] + a[:, 3] / 2, b[:, 1] + b[:, 3] / 2)
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    want = inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter)
    np.testing.assert_allclose(anchors.iou(a, b), want, rtol=1e-5, atol=1e-6)
