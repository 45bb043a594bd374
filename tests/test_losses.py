"""Tests for vos_jax.losses against float64 NumPy references."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vos_jax.losses import bootstrap_fraction, bootstrapped_cross_entropy

B, H, W, O = 3, 17, 19, 4  # noqa: E741 (O = objects, as in DESIGN.md)
_loss = jax.jit(bootstrapped_cross_entropy)


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (B, H, W, O)).astype(np.float32)
    labels = rng.integers(0, O, (B, H, W))
    labels[rng.uniform(size=labels.shape) < 0.2] = 255  # void
    labels[0, :2] = -1  # void as well
    valid = np.array([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]], bool)  # padded objects
    return logits, labels, valid


def _reference(logits, labels, valid, fraction):
    """Per example: CE over its valid objects on pixels labelled with one of them, keep the k
    hardest (k = round(fraction * n) in float32, at least 1), mean over everything kept."""
    kept = []
    for b in range(logits.shape[0]):
        objects = np.flatnonzero(valid[b])
        lg = logits[b].astype(np.float64)[..., objects]
        top = lg.max(-1, keepdims=True)
        lse = np.log(np.exp(lg - top).sum(-1)) + top[..., 0]
        counts = np.isin(labels[b], objects)
        pixel_labels = labels[b][counts]
        losses = lse[counts] - logits[b].astype(np.float64)[counts, pixel_labels]
        n = losses.size
        k = int(np.round(np.float32(fraction) * np.float32(n)))
        k = min(max(k, min(n, 1)), n)
        kept.extend(np.sort(losses)[::-1][:k])
    return np.mean(kept) if kept else 0.0


@pytest.mark.parametrize("fraction", [1.0, 0.5, 0.15, 0.03])
def test_matches_numpy_reference(fraction):
    logits, labels, valid = _inputs()
    loss = _loss(logits, labels, valid, fraction)
    assert loss.dtype == jnp.float32 and loss.shape == ()
    np.testing.assert_allclose(loss, _reference(logits, labels, valid, fraction), rtol=1e-5)


def test_full_fraction_is_plain_mean_cross_entropy():
    logits, labels, _ = _inputs(1)
    valid = np.ones((B, O), bool)
    counts = (labels >= 0) & (labels < O)
    lg = logits[counts].astype(np.float64)
    log_probs = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
    plain = -np.take_along_axis(log_probs, labels[counts][:, None], axis=1).mean()
    loss = _loss(logits, labels, valid, 1.0)
    np.testing.assert_allclose(loss, plain, rtol=1e-5)
    assert float(_loss(logits, labels, valid, 0.15)) > float(loss)


def test_gradients_are_finite_and_masked():
    logits, labels, valid = _inputs(2)
    labels[2] = 255  # an example without any valid pixel
    logits[1, ..., 3] = 1e4  # huge logit on a padded object must not matter
    grad = jax.jit(jax.grad(bootstrapped_cross_entropy))(logits, labels, valid, 0.3)
    assert np.isfinite(np.asarray(grad)).all()
    assert float(jnp.abs(grad[1, ..., 3]).max()) == 0.0
    assert float(jnp.abs(grad[2]).max()) == 0.0
    assert float(jnp.abs(grad[0][labels[0] == 255]).max()) == 0.0
    # Only about 30% of the pixels of each example receive a gradient.
    touched = np.asarray(jnp.abs(grad[0]).sum(-1) > 0).mean()
    assert 0.2 < touched < 0.3
    empty = _loss(logits, np.full_like(labels, 255), valid, 0.3)
    assert float(empty) == 0.0


def test_traced_fraction_compiles_once():
    logits, labels, valid = _inputs(3)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def loss_at(step, logits):
        return bootstrapped_cross_entropy(logits, labels, valid, bootstrap_fraction(step, 100))

    for step in (0, 50, 100, 1000):
        expected = _reference(logits, labels, valid, max(0.15, 1.0 - 0.85 * step / 100))
        np.testing.assert_allclose(loss_at(step, logits), expected, rtol=1e-5)


def test_bootstrap_fraction_schedule():
    values = [float(bootstrap_fraction(s, 100_000)) for s in (0, 50_000, 100_000, 250_000, -5)]
    np.testing.assert_allclose(values, [1.0, 0.575, 0.15, 0.15, 1.0], rtol=1e-6)
    assert float(bootstrap_fraction(10, 0)) == pytest.approx(0.15)
    assert float(bootstrap_fraction(40, 80, final=0.5)) == pytest.approx(0.75)
    jitted = jax.jit(bootstrap_fraction, static_argnums=1)(jnp.int32(25_000), 100_000)
    assert float(jitted) == pytest.approx(0.7875)
