"""The portrait hourglass (models/portrait.py): pooling with argmax and unpooling against NumPy
loops (TFLite's window order and tie rule), the published graph's size, shapes and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vos_jax.models.portrait import HAIR_VARIANTS, Block, HairNet, max_pool_argmax, max_unpool


def _reference_pool(x):
    """Loops: max of each 2x2 window and its first maximum in the order (0,0), (1,0), (0,1),
    (1,1) as (dy, dx): index 2 dx + dy."""
    b, h, w, c = x.shape
    values = np.zeros((b, h // 2, w // 2, c), x.dtype)
    index = np.zeros((b, h // 2, w // 2, c), np.int64)
    for n in range(b):
        for i in range(h // 2):
            for j in range(w // 2):
                for k in range(c):
                    best, where = -np.inf, 0
                    for dx in range(2):
                        for dy in range(2):
                            v = x[n, 2 * i + dy, 2 * j + dx, k]
                            if v > best:
                                best, where = v, 2 * dx + dy
                    values[n, i, j, k], index[n, i, j, k] = best, where
    return values, index


def test_pooling_with_argmax_and_unpooling_match_loops_with_ties():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, (2, 6, 8, 3)).astype(np.float32)  # small integers: many ties
    want_values, want_index = _reference_pool(x)
    values, index = max_pool_argmax(jnp.asarray(x))
    np.testing.assert_array_equal(values, want_values)
    np.testing.assert_array_equal(index, want_index)
    y = rng.normal(size=values.shape).astype(np.float32)
    want = np.zeros_like(x)
    for n, i, j, k in np.ndindex(*y.shape):
        dx, dy = divmod(int(want_index[n, i, j, k]), 2)
        want[n, 2 * i + dy, 2 * j + dx, k] = y[n, i, j, k]
    np.testing.assert_array_equal(max_unpool(jnp.asarray(y), index), want)


def test_paper_variant_has_the_published_graphs_size_and_shapes():
    model = HairNet.variant("paper")
    x = jax.ShapeDtypeStruct((1, 512, 512, 4), jnp.float32)
    variables = jax.eval_shape(lambda s: model.init(jax.random.key(0), s), x)
    assert sum(np.prod(v.shape) for v in jax.tree.leaves(variables)) == 181_506
    assert jax.eval_shape(model.apply, variables, x).shape == (1, 512, 512, 2)


def test_tiny_runs_with_and_without_the_prior_and_refuses_bad_sizes():
    for channels in (4, 3):
        model = HairNet.variant("tiny", in_channels=channels)
        x = jax.ShapeDtypeStruct((2, 64, 96, channels), jnp.float32)
        variables = jax.eval_shape(model.init, jax.random.key(0), x)
        assert jax.eval_shape(model.apply, variables, x).shape == (2, 64, 96, 2)
    with pytest.raises(ValueError, match="multiples of 32"):
        jax.eval_shape(model.apply, variables, jnp.zeros((1, 48, 64, 3)))
    with pytest.raises(ValueError, match="takes 3 channels"):
        jax.eval_shape(model.apply, variables, jnp.zeros((1, 64, 64, 4)))


def test_blocks_from_json_lists_are_blocks():
    lists = [list(b) for b in HAIR_VARIANTS["tiny"]["encoder"]]
    model = HairNet.variant("tiny", encoder=lists)
    assert model.encoder == HAIR_VARIANTS["tiny"]["encoder"]
    assert all(isinstance(b, Block) for b in model.encoder)
