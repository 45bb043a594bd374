"""RVOS model (vos_jax/models/rvos.py) and its layers: aligned-corner resize, ceil-mode max-pool
and the ConvLSTM cell against float64 NumPy references; the slot scan against a plain loop."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vos_jax.models.layers import ConvLSTMCell, max_pool_ceil, resize_align_corners
from vos_jax.models.rvos import Rvos, RvosSlotDecoder, initial_state, mask_pyramid


def _resize_reference(x: np.ndarray, size) -> np.ndarray:
    """Bilinear, aligned corners, pixel by pixel in float64 (PyTorch's UpsamplingBilinear2d)."""
    _, h, w, _ = x.shape
    out = np.zeros((x.shape[0], *size, x.shape[-1]))
    for i in range(size[0]):
        y = i * (h - 1) / (size[0] - 1) if size[0] > 1 else 0.0
        y0 = min(int(np.floor(y)), h - 1)
        y1, fy = min(y0 + 1, h - 1), y - y0
        for j in range(size[1]):
            xx = j * (w - 1) / (size[1] - 1) if size[1] > 1 else 0.0
            x0 = min(int(np.floor(xx)), w - 1)
            x1, fx = min(x0 + 1, w - 1), xx - x0
            top = (1 - fx) * x[:, y0, x0] + fx * x[:, y0, x1]
            bottom = (1 - fx) * x[:, y1, x0] + fx * x[:, y1, x1]
            out[:, i, j] = (1 - fy) * top + fy * bottom
    return out


@pytest.mark.parametrize("src,size", [((8, 14), (15, 27)), ((5, 7), (10, 14)), ((6, 9), (1, 4))])
def test_resize_align_corners_matches_a_float64_reference(src, size):
    x = np.random.default_rng(0).normal(size=(2, *src, 3))
    got = resize_align_corners(jnp.asarray(x, jnp.float32), size)
    np.testing.assert_allclose(np.asarray(got), _resize_reference(x, size), atol=1e-5)
    # Corners are kept exactly (aligned corners); the grid of the input is hit where it lands.
    if min(size) > 1:
        np.testing.assert_allclose(np.asarray(got)[:, -1, -1], x[:, -1, -1], atol=1e-6)


@pytest.mark.parametrize("shape", [(7, 9), (8, 14), (1, 3)])
def test_max_pool_ceil_mode(shape):
    x = np.random.default_rng(1).normal(size=(2, *shape, 3))
    got = np.asarray(max_pool_ceil(jnp.asarray(x)))
    h, w = -(-shape[0] // 2), -(-shape[1] // 2)
    assert got.shape == (2, h, w, 3)
    for i in range(h):
        for j in range(w):
            want = x[:, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].max(axis=(1, 2))
            np.testing.assert_array_equal(got[:, i, j], want.astype(got.dtype))


def _conv3x3(x, kernel, bias):
    """'same' 3x3 convolution (zero padding 1) in float64: x [B, H, W, C], kernel [3, 3, C, F]."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((*x.shape[:3], kernel.shape[-1])) + bias
    for dy in range(3):
        for dx in range(3):
            window = padded[:, dy : dy + x.shape[1], dx : dx + x.shape[2]]
            out += window @ kernel[dy, dx]
    return out


@pytest.mark.parametrize("with_mask", [True, False])
def test_convlstm_cell_matches_the_official_equations(with_mask):
    rng = np.random.default_rng(2)
    x, h_s, c_s, h_t = (rng.normal(size=(2, 5, 6, c)) for c in (3, 4, 4, 4))
    mask = rng.random((2, 5, 6, 1)) if with_mask else None
    cell = ConvLSTMCell(4)
    args = [jnp.asarray(a, jnp.float32) if a is not None else None for a in (x, mask, h_s, c_s)]
    variables = cell.init(jax.random.key(0), args[0], args[1], (args[2], args[3]), args[2])
    variables = jax.tree.map(lambda v: v + 0.1 * rng.normal(size=v.shape), variables)  # bias too
    h, c = cell.apply(variables, args[0], args[1], (args[2], args[3]), jnp.asarray(h_t))
    # Official order: [input, mask, spatial h, temporal h]; gates i, f, o, g.
    stacked = np.concatenate([a for a in (x, mask, h_s, h_t) if a is not None], axis=-1)
    p = variables["params"]["gates"]
    gates = _conv3x3(stacked, np.asarray(p["kernel"], np.float64), np.asarray(p["bias"]))
    i, f, o, g = np.split(gates, 4, axis=-1)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))
    cell_want = sigmoid(f) * c_s + sigmoid(i) * np.tanh(g)
    np.testing.assert_allclose(np.asarray(c), cell_want, atol=2e-5)
    np.testing.assert_allclose(np.asarray(h), sigmoid(o) * np.tanh(cell_want), atol=2e-5)


@pytest.fixture(scope="module")
def tiny():
    model = Rvos.variant("tiny")
    frames = np.random.default_rng(3).integers(0, 256, (2, 40, 57, 3), np.uint8)
    variables = jax.jit(model.init, static_argnames="num_objects")(
        jax.random.key(0), frames, num_objects=3
    )
    return model, variables, frames


def test_skips_and_mask_pyramid_sizes_agree(tiny):
    """Stride s maps are ceil(H / s); the pooled masks land on the same grids (odd sizes)."""
    model, variables, frames = tiny
    skips = model.apply(variables, frames, method=Rvos.features)
    sizes = [s.shape[1:3] for s in skips]
    assert sizes == [(2, 2), (3, 4), (5, 8), (10, 15)]
    assert [s.shape[-1] for s in skips] == [16, 16, 8, 4]
    pyramid = mask_pyramid(jnp.zeros((2, 40, 57, 3)))
    assert [p.shape for p in pyramid] == [(3, 2, *hw, 1) for hw in sizes]


def test_slot_scan_equals_a_loop_and_is_causal(tiny):
    """decode (an nn.scan over slots) = the slot decoder called slot after slot by hand; slot k
    depends on slots < k (spatial recurrence), never on later ones."""
    model, variables, frames = tiny
    skips = model.apply(variables, frames, method=Rvos.features)
    rng = np.random.default_rng(4)
    state = tuple(
        jnp.asarray(rng.normal(size=s.shape), jnp.float32)
        for s in initial_state(skips, 3, model.hidden)
    )
    prev = jnp.asarray(rng.random((2, 40, 57, 3)), jnp.float32)
    logits, new_state = model.apply(variables, skips, state, prev, (40, 57), method=Rvos.decode)
    decoder = RvosSlotDecoder(model.hidden, one_shot=True)
    params = {"params": variables["params"]["decoder"]}
    masks = mask_pyramid(prev)
    spatial = tuple((jnp.zeros_like(s[0]), jnp.zeros_like(s[0])) for s in state)
    for k in range(3):
        inputs = (tuple(s[k] for s in state), tuple(m[k] for m in masks))
        spatial, (half, hiddens) = decoder.apply(params, spatial, inputs, skips)
        full = resize_align_corners(half[..., None], (40, 57))[..., 0]
        np.testing.assert_allclose(np.asarray(logits[..., k]), np.asarray(full), atol=1e-5)
        for got, want in zip(new_state, hiddens, strict=True):
            np.testing.assert_allclose(np.asarray(got[k]), np.asarray(want), atol=1e-6)
    changed = prev.at[..., 1].set(1.0 - prev[..., 1])
    other, _ = model.apply(variables, skips, state, changed, (40, 57), method=Rvos.decode)
    np.testing.assert_array_equal(np.asarray(other[..., 0]), np.asarray(logits[..., 0]))
    for k in (1, 2):
        assert np.abs(np.asarray(other[..., k] - logits[..., k])).max() > 1e-6


def test_variants_and_parameter_names(tiny):
    model, variables, _ = tiny
    params = flax.traverse_util.flatten_dict(variables["params"], sep="/")
    assert "encoder/sk5/kernel" in params and "encoder/base/layer4_0/conv3/kernel" in params
    assert params["decoder/cell0/gates/kernel"].shape == (3, 3, 16 + 1 + 16 + 16, 64)
    zero_shot = Rvos.variant("tiny", one_shot=False)
    zs = jax.eval_shape(lambda: zero_shot.init(jax.random.key(0), np.zeros((1, 32, 32, 3))))
    assert zs["params"]["decoder"]["cell0"]["gates"]["kernel"].shape == (3, 3, 48, 64)
    with pytest.raises(ValueError, match="previous_probs"):
        skips = model.apply(variables, np.zeros((1, 32, 32, 3), np.uint8), method=Rvos.features)
        model.apply(
            variables, skips, initial_state(skips, 1, 16), None, (32, 32), method=Rvos.decode
        )
