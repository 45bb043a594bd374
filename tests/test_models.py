"""Tests for vos_jax.models: layers, backbones (ResNet, MobileNetV2), DeepLabv3+, FEELVOS.

Paper-size models are only traced (`jax.eval_shape`); runs use tiny variants and small frames.
XLA:CPU compiles random-number generation slowly, so the tiny FEELVOS is initialised once (with
an rbg key) and its encoder variables double as the tiny ResNet's.
"""

from __future__ import annotations

import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vos_jax.models.backbones import MobileNetV2, ResNet, dilation_schedule
from vos_jax.models.deeplab import scaled_atrous_rates
from vos_jax.models.feelvos import (
    VARIANTS,
    Feelvos,
    predict_labels,
    probabilities,
    upsample,
)
from vos_jax.models.layers import (
    MaskedBatchNorm,
    conv_general_dilated,
    depthwise_conv,
    upsample_aligned,
)

B, H, W = 2, 62, 90  # stride-4 grid: ceil(62 / 4) = 16, ceil(90 / 4) = 23
h, w = 16, 23
TINY = VARIANTS["tiny"]


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _abstract_init(model, *args, **kwargs):
    return jax.eval_shape(lambda: model.init(jax.random.key(0), *args, **kwargs))


def _numpy_variables(model, x, seed=0):
    """Random variables without compiling an init (fast on CPU): He-normal kernels, BN running
    variance near 1, small random biases / means / scales."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if "kernel" in name:
            fan_in = int(np.prod(leaf.shape[:-1]))
            return rng.normal(0, np.sqrt(2.0 / fan_in), leaf.shape).astype(np.float32)
        if "'var'" in name or "'scale'" in name:
            return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
        return rng.normal(0, 0.1, leaf.shape).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, _abstract_init(model, x))


def _uniform(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(size=shape), jnp.float32)


def _normal(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


@pytest.fixture(scope="module")
def tiny():
    model = Feelvos.variant("tiny")
    frames = jnp.round(_uniform((B, H, W, 3), seed=1) * 255) / 255  # exact as uint8
    key = jax.random.key(0, impl="unsafe_rbg")
    variables = jax.jit(lambda k, x: model.init(k, x, num_objects=2))(key, frames)
    return model, variables, frames


@pytest.fixture(scope="module")
def tiny_features(tiny):
    model, variables, frames = tiny
    features = jax.jit(lambda v, x: model.apply(v, x, method=Feelvos.features))
    return features(variables, frames)


@pytest.fixture(scope="module")
def segment(tiny):
    """Jitted `Feelvos.segment` in eval (False) and train (True) mode, shared by the tests."""
    model, _, _ = tiny

    def run(variables, feats, g, loc, p, valid, train):
        out, _ = model.apply(
            variables, feats, g, loc, p, valid, train, method=Feelvos.segment,
            mutable=["batch_stats"],
        )  # fmt: skip
        return out

    fn = jax.jit(run, static_argnames="train")
    return {train: functools.partial(fn, train=train) for train in (False, True)}


def _maps(num_objects, seed=0):
    return [_uniform((B, h, w, num_objects), seed + i) for i in range(3)]


# ----------------------------------------------------------------------------- layers


def test_masked_batchnorm_matches_flax_and_masks():
    x = _normal((4, 5, 6, 3)) * 2.0 + 1.0
    ours, ref = MaskedBatchNorm(), nn.BatchNorm(use_running_average=False, momentum=0.9)
    variables = _abstract_init(ref, x)
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


# ----------------------------------------------------------------------------- backbones


@pytest.mark.parametrize(
    "name,expected",  # torchvision parameters minus the fc layer
    [("resnet34", 21_797_672 - 513_000), ("resnet50", 25_557_032 - 2_049_000),
     ("resnet101", 44_549_160 - 2_049_000)],
)  # fmt: skip
def test_resnet_param_counts_match_torchvision(name, expected):
    variables = _abstract_init(ResNet.from_name(name), jnp.zeros((1, 224, 224, 3)))
    assert _count(variables["params"]) == expected


@pytest.mark.parametrize("output_stride", [32, 16, 8])
def test_resnet50_tap_shapes(output_stride):
    model = ResNet.from_name("resnet50", output_stride=output_stride)
    x = jnp.zeros((1, 224, 224, 3))
    taps = jax.eval_shape(model.apply, _abstract_init(model, x), x)
    sizes = {"stem": 112, "layer1": 56, "layer2": 28}
    sizes |= {"layer3": 224 // min(16, output_stride), "layer4": 224 // output_stride}
    channels = {"stem": 64, "layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}
    assert {k: v.shape for k, v in taps.items()} == {
        k: (1, sizes[k], sizes[k], channels[k]) for k in sizes
    }


def test_tiny_resnet_shapes_and_dilation_keeps_content(tiny):
    _, variables, _ = tiny
    encoder = {c: variables[c]["encoder"] for c in ("params", "batch_stats")}
    x = _normal((1, 224, 224, 3), seed=2)
    taps = {}
    for os in (32, 16, 8):
        model = ResNet((1, 1, 1, 1), width=8, output_stride=os)
        taps[os] = jax.jit(model.apply)(encoder, x)
        widths = {"stem": 8, "layer1": 32, "layer2": 64, "layer3": 128, "layer4": 256}
        strides = {"stem": 2, "layer1": 4, "layer2": 8, "layer3": min(16, os), "layer4": os}
        for k, v in taps[os].items():
            assert v.shape == (1, 224 // strides[k], 224 // strides[k], widths[k]), (os, k)
    # Dilation instead of stride computes the same function on a denser grid (a trous).
    ref = taps[32]["layer4"]
    scale = float(jnp.abs(ref).max())
    np.testing.assert_allclose(taps[16]["layer4"][:, ::2, ::2], ref, atol=1e-4 * scale)
    np.testing.assert_allclose(taps[8]["layer4"][:, ::4, ::4], ref, atol=1e-4 * scale)
    np.testing.assert_allclose(taps[8]["layer3"][:, ::2, ::2], taps[32]["layer3"], atol=1e-3)


def test_resnet_odd_sizes_round_up():
    model = ResNet((1, 1, 1, 1), width=8, bottleneck=False, output_stride=16)
    x = jnp.zeros((1, 65, 97, 3))
    taps = jax.eval_shape(model.apply, _abstract_init(model, x), x)
    for name, stride in [("stem", 2), ("layer1", 4), ("layer2", 8), ("layer4", 16)]:
        assert taps[name].shape[1:3] == (-(-65 // stride), -(-97 // stride))


def test_batchnorm_train_vs_eval(tiny):
    _, variables, _ = tiny
    encoder = {c: variables[c]["encoder"] for c in ("params", "batch_stats")}
    model = ResNet((1, 1, 1, 1), width=8)
    x = 3.0 * _normal((2, 32, 32, 3), seed=3) + 1.0
    train = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))
    taps, updated = train(encoder, x)
    stem_stats = updated["batch_stats"]["bn1"]
    # Training normalises with batch statistics and moves the running averages towards them.
    conv1 = jax.lax.conv_general_dilated(
        x, encoder["params"]["conv1"]["kernel"], (2, 2), ((3, 3), (3, 3)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )  # fmt: skip
    np.testing.assert_allclose(stem_stats["mean"], 0.1 * conv1.mean((0, 1, 2)), rtol=1e-4)
    np.testing.assert_allclose(stem_stats["var"], 0.9 + 0.1 * conv1.var((0, 1, 2)), rtol=1e-4)
    eval_taps = jax.jit(model.apply)(encoder, x)
    assert not np.allclose(taps["layer4"], eval_taps["layer4"], atol=1e-3)
    normalised = np.maximum((conv1 - conv1.mean((0, 1, 2))) / conv1.std((0, 1, 2)), 0)
    np.testing.assert_allclose(taps["stem"], normalised, atol=1e-3)


def test_mobilenet_v2_param_count_and_taps():
    x = jnp.zeros((1, 224, 224, 3))
    model = MobileNetV2()
    variables = _abstract_init(model, x)
    assert _count(variables["params"]) == 3_504_872 - 1_281_000  # torchvision minus classifier
    expected = {"stem": (112, 16), "layer1": (56, 24), "layer2": (28, 32)}
    for os, last in [(32, 1280), (8, None)]:
        model = MobileNetV2(output_stride=os, last_channels=last)
        taps = jax.eval_shape(model.apply, _abstract_init(model, x), x)
        exp = expected | {"layer3": (224 // min(16, os), 96), "layer4": (224 // os, last or 320)}
        assert {k: v.shape for k, v in taps.items()} == {
            k: (1, s, s, c) for k, (s, c) in exp.items()
        }


def test_mobilenet_v2_dilation_keeps_content():
    x = _normal((1, 64, 64, 3), seed=4)
    variables = _numpy_variables(MobileNetV2(width=0.25), x)
    out = {
        os: jax.jit(MobileNetV2(width=0.25, output_stride=os).apply)(variables, x)["layer4"]
        for os in (32, 8)
    }
    assert out[8].shape == (1, 8, 8, 1280)
    scale = float(jnp.abs(out[32]).max())
    np.testing.assert_allclose(out[8][:, ::4, ::4], out[32], atol=1e-4 * scale)


# ----------------------------------------------------------------------------- FEELVOS


def test_feelvos_init_and_feature_shapes(tiny, tiny_features):
    model, variables, frames = tiny
    assert set(variables) == {"params", "batch_stats"}
    assert set(variables["params"]) == {"encoder", "decoder", "embedding", "head"}
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))
    feats, emb = tiny_features
    assert feats.shape == (B, h, w, TINY["decoder_channels"]) and feats.dtype == jnp.float32
    assert emb.shape == (B, h, w, TINY["embedding_dim"]) and emb.dtype == jnp.float32
    # Near-identity embedding head: embeddings start close to the first D feature channels.
    first = feats[..., : TINY["embedding_dim"]]
    assert float(jnp.linalg.norm(emb - first) / jnp.linalg.norm(first)) < 0.5
    # Leading dims (e.g. [B, T]) and uint8 frames (scaled by 1 / 255 inside).
    clip = (frames[None] * 255).round().astype(jnp.uint8)
    feats_u8, emb_u8 = jax.jit(model.apply, static_argnames="method")(
        variables, clip, method=Feelvos.features
    )
    assert feats_u8.shape == (1, B, h, w, TINY["decoder_channels"])
    np.testing.assert_allclose(feats_u8[0], feats, atol=1e-5)
    np.testing.assert_allclose(emb_u8[0], emb, atol=1e-5)


def test_segment_shapes_and_any_object_count(tiny, tiny_features, segment):
    _, variables, _ = tiny
    feats, _ = tiny_features
    for num_objects in (1, 5):  # initialised with O = 2
        valid = jnp.ones((B, num_objects), bool)
        logits = segment[False](variables, feats, *_maps(num_objects), valid)
        assert logits.shape == (B, h, w, num_objects) and logits.dtype == jnp.float32
        assert np.isfinite(np.asarray(logits)).all()


@pytest.mark.parametrize("train", [False, True])
def test_head_is_shared_across_objects(tiny, tiny_features, segment, train):
    _, variables, _ = tiny
    feats, _ = tiny_features
    maps, valid = _maps(5), jnp.ones((B, 5), bool)
    perm = jnp.array([3, 0, 4, 1, 2])
    logits = segment[train](variables, feats, *maps, valid)
    permuted = segment[train](variables, feats, *[m[..., perm] for m in maps], valid)
    np.testing.assert_allclose(permuted, logits[..., perm], atol=1e-5)


def test_padded_objects_are_ignored(tiny, tiny_features, segment):
    _, variables, _ = tiny
    feats, _ = tiny_features
    maps = _maps(5)
    valid = jnp.array([[True, True, True, False, False], [True, True, False, False, False]])
    logits = segment[True](variables, feats, *maps, valid)
    probs = probabilities(logits, valid)
    assert probs.dtype == jnp.float32
    assert float(probs[0, ..., 3:].max()) < 1e-6 and float(probs[1, ..., 2:].max()) < 1e-6
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    # The maps of padded objects do not reach valid objects, even through BatchNorm statistics.
    noisy = [jnp.where(valid[:, None, None, :], m, 100.0 * m + 3.0) for m in maps]
    np.testing.assert_allclose(segment[True](variables, feats, *noisy, valid), logits, atol=1e-5)
    labels = jax.jit(predict_labels, static_argnums=2)(logits, valid, (H, W))
    assert labels.shape == (B, H, W) and labels.dtype == jnp.int32
    assert int(labels[0].max()) <= 2 and int(labels[1].max()) <= 1
    assert upsample(probs, (H, W)).shape == (B, H, W, 5)


def test_jit_compiles_once(tiny):
    model, variables, frames = tiny

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(variables, frames, maps, valid):
        feats, emb = model.apply(variables, frames, method=Feelvos.features)
        logits = model.apply(variables, feats, *maps, valid, method=Feelvos.segment)
        return probabilities(logits, valid), emb

    for seed in range(3):
        maps = _maps(3, seed)
        valid = jnp.array([[True, True, seed > 0], [True, True, True]])
        probs, _ = step(variables, frames + 0.01 * seed, maps, valid)
        assert probs.shape == (B, h, w, 3)


def test_eval_output_stride_8_and_bfloat16(tiny, tiny_features, segment):
    model, variables, frames = tiny
    maps, valid = _maps(5), jnp.ones((B, 5), bool)
    reference = segment[False](variables, tiny_features[0], *maps, valid)
    for kwargs in ({"output_stride": 8}, {"dtype": jnp.bfloat16}):
        variant = model.clone(**kwargs)

        @jax.jit
        def run(variables, frames, maps, variant=variant):
            feats, emb = variant.apply(variables, frames, method=Feelvos.features)
            return feats, emb, variant.apply(variables, feats, *maps, valid, method=Feelvos.segment)

        feats, emb, logits = run(variables, frames, maps)
        assert feats.shape[:3] == emb.shape[:3] == (B, h, w)
        assert emb.dtype == logits.dtype == jnp.float32
        assert logits.shape == (B, h, w, 5) and np.isfinite(np.asarray(logits)).all()
        if "dtype" in kwargs:  # same variables (float32), computation in bfloat16
            assert feats.dtype == jnp.bfloat16
            scale = float(jnp.abs(reference).max())
            np.testing.assert_allclose(logits, reference, atol=0.1 * scale)


def test_variant_param_counts():
    frames = jnp.zeros((1, 65, 65, 3))
    counts = {}
    for name in ("paper", "mobile", "tiny"):
        variables = _abstract_init(Feelvos.variant(name), frames, num_objects=2)
        counts[name] = _count(variables["params"])
    # paper: ResNet-101 42.50M + ASPP 3.02M + decoder 0.16M + embedding 0.03M + head 0.32M
    assert counts == {"paper": 46_028_718, "mobile": 3_060_270, "tiny": 193_986}
