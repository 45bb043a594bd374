"""vos_jax.models.layers: masked BatchNorm, depthwise and pointwise convolutions as shifted sums
and dots on XLA:CPU, aligned upsampling; against references."""

from __future__ import annotations

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.models.model_cases import (
    abstract_init,
    normal,
)
from vos_jax.models.backbones import dilation_schedule
from vos_jax.models.deeplab import scaled_atrous_rates
from vos_jax.models.layers import (
    MaskedBatchNorm,
    conv_general_dilated,
    depthwise_conv,
    upsample_aligned,
)

# ----------------------------------------------------------------------------- layers


def test_masked_batchnorm_matches_flax_and_masks():
    x = normal((4, 5, 6, 3)) * 2.0 + 1.0
    ours, ref = MaskedBatchNorm(), nn.BatchNorm(use_running_average=False, momentum=0.9)
    variables = abstract_init(ref, x)
    variables = jax.tree.map(lambda a: jnp.full(a.shape, 0.5), variables)  # scale, bias, mean, var
    apply = jax.jit(lambda m, v, *a: m.apply(v, *a, mutable=["batch_stats"]), static_argnums=0)
    y_ref, s_ref = apply(ref, variables, x)
    y, s = apply(ours, variables, x)
    np.testing.assert_allclose(y, y_ref, atol=1e-5)
    chex.assert_trees_all_close(s, s_ref, atol=1e-6)
    mask = jnp.arange(4)[:, None, None, None] < 2  # statistics of the first two examples only
    y_masked, _ = apply(ours, variables, x, mask)
    y_sub, _ = apply(ref, variables, x[:2])
    np.testing.assert_allclose(y_masked[:2], y_sub, atol=1e-5)
    y_eval, _ = apply(MaskedBatchNorm(use_running_average=True), variables, x)
    np.testing.assert_allclose(y_eval, (x - 0.5) / np.sqrt(0.5 + 1e-5) * 0.5 + 0.5, atol=1e-5)


@pytest.mark.parametrize("k, strides, dilation", [(3, 1, 1), (7, 1, 1), (3, 2, 1), (3, 1, 6)])
def test_depthwise_shifted_sum_equals_grouped_convolution(k, strides, dilation):
    """The CPU path (shifted sum) and the grouped convolution agree, values and gradients, and
    both keep the ceil(n / stride) geometry, on odd sizes too."""
    rng = np.random.default_rng(k + strides + dilation)
    x = jnp.asarray(rng.normal(size=(2, 13, 10, 5)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(k, k, 1, 5)), jnp.float32)
    target = jnp.asarray(rng.normal(size=(2, -(-13 // strides), -(-10 // strides), 5)))

    def loss(x, kernel, shifted):
        y = depthwise_conv(x, kernel, strides, dilation, shifted_sum=shifted)
        return jnp.sum((y - target) ** 2), y

    (_, want), want_grads = jax.value_and_grad(loss, (0, 1), has_aux=True)(x, kernel, False)
    (_, got), got_grads = jax.value_and_grad(loss, (0, 1), has_aux=True)(x, kernel, True)
    assert got.shape == target.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for g, w in zip(got_grads, want_grads, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)
    bf16 = depthwise_conv(x.astype(jnp.bfloat16), kernel, strides, dilation, shifted_sum=True)
    assert bf16.dtype == jnp.bfloat16
    np.testing.assert_allclose(bf16.astype(jnp.float32), want, rtol=0.05, atol=0.1)


@pytest.mark.parametrize("strides", [1, 2])
def test_pointwise_conv_as_a_dot_equals_the_convolution(strides):
    """The CPU path of 1x1 convolutions (a dot of the strided input) = lax's convolution, values
    and gradients, through nn.Conv; other kernels and padded ones go to lax unchanged."""
    rng = np.random.default_rng(strides)
    x = jnp.asarray(rng.normal(size=(2, 13, 10, 6)), jnp.float32)
    target = jnp.asarray(rng.normal(size=(2, -(-13 // strides), -(-10 // strides), 4)))

    def run(conv_fn, x, variables):
        conv = nn.Conv(
            4, (1, 1), strides=strides, padding=((0, 0), (0, 0)), conv_general_dilated=conv_fn
        )
        y = conv.apply(variables, x)
        return jnp.sum((y - target) ** 2), y

    conv = nn.Conv(4, (1, 1), strides=strides, padding=((0, 0), (0, 0)))
    variables = conv.init(jax.random.key(0), x)
    grad = jax.value_and_grad(run, (1, 2), has_aux=True)
    (_, want), want_grads = grad(jax.lax.conv_general_dilated, x, variables)
    (_, got), got_grads = grad(conv_general_dilated, x, variables)
    assert got.shape == target.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for g, w in zip(jax.tree.leaves(got_grads), jax.tree.leaves(want_grads), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)
    jaxpr = str(jax.make_jaxpr(lambda x: run(conv_general_dilated, x, variables))(x))
    assert "dot_general" in jaxpr and "conv_general_dilated" not in jaxpr
    padded = nn.Conv(4, (1, 1), padding=((1, 1), (1, 1)), conv_general_dilated=conv_general_dilated)
    jaxpr = str(jax.make_jaxpr(lambda x: padded.apply(padded.init(jax.random.key(0), x), x))(x))
    assert "conv_general_dilated" in jaxpr


def test_upsample_aligned_equals_align_corners():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 5, 4, 2)).astype(np.float32)
    y = np.asarray(upsample_aligned(jnp.asarray(x), (17, 13), 4))  # 4 (n - 1) + 1

    def ref_axis(a, out, axis):  # align_corners=True linear interpolation, float64
        pos = np.arange(out) * (a.shape[axis] - 1) / (out - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, a.shape[axis] - 1)
        t = (pos - lo).reshape((-1,) + (1,) * (a.ndim - 1 - axis))
        return np.take(a, lo, axis) * (1 - t) + np.take(a, hi, axis) * t

    expected = ref_axis(ref_axis(x.astype(np.float64), 17, 1), 13, 2)
    np.testing.assert_allclose(y, expected, atol=1e-5)
    # Past the last sample (H = 4 h): edge value; grid sample j stays on pixel 4 j.
    y = np.asarray(upsample_aligned(jnp.asarray(x), (20, 16), 4))
    np.testing.assert_allclose(y[:, ::4, ::4], x, atol=1e-6)
    np.testing.assert_allclose(y[:, 17:, 12:], np.broadcast_to(x[:, 4:, 3:], (1, 3, 4, 2)))


def test_dilation_schedule_and_aspp_rates():
    assert dilation_schedule((1, 2, 2, 2), 32, 4) == [(1, 1, 1), (2, 1, 1), (2, 1, 1), (2, 1, 1)]
    assert dilation_schedule((1, 2, 2, 2), 16, 4) == [(1, 1, 1), (2, 1, 1), (2, 1, 1), (1, 1, 2)]
    assert dilation_schedule((1, 2, 2, 2), 8, 4) == [(1, 1, 1), (2, 1, 1), (1, 1, 2), (1, 2, 4)]
    with pytest.raises(ValueError):
        dilation_schedule((1, 2, 2, 2), 4, 4)
    assert scaled_atrous_rates((6, 12, 18), 16) == (6, 12, 18)
    assert scaled_atrous_rates((6, 12, 18), 8) == (12, 24, 36)
    assert scaled_atrous_rates((6, 12, 18), 32) == (3, 6, 9)
