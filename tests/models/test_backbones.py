"""vos_jax.models.backbones and deeplab: ResNet (torchvision parameter counts, taps, dilation),
MobileNetV2, ASPP rates. Paper-size models are only traced (`jax.eval_shape`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.models.model_cases import (
    abstract_init,
    count_params,
    normal,
    numpy_variables,
)
from vos_jax.models.backbones import MobileNetV2, ResNet

# ----------------------------------------------------------------------------- backbones


@pytest.mark.parametrize(
    "name,expected",  # torchvision parameters minus the fc layer
    [("resnet34", 21_797_672 - 513_000), ("resnet50", 25_557_032 - 2_049_000),
     ("resnet101", 44_549_160 - 2_049_000)],
)  # fmt: skip
def test_resnet_param_counts_match_torchvision(name, expected):
    variables = abstract_init(ResNet.from_name(name), jnp.zeros((1, 224, 224, 3)))
    assert count_params(variables["params"]) == expected


@pytest.mark.parametrize("output_stride", [32, 16, 8])
def test_resnet50_tap_shapes(output_stride):
    model = ResNet.from_name("resnet50", output_stride=output_stride)
    x = jnp.zeros((1, 224, 224, 3))
    taps = jax.eval_shape(model.apply, abstract_init(model, x), x)
    sizes = {"stem": 112, "layer1": 56, "layer2": 28}
    sizes |= {"layer3": 224 // min(16, output_stride), "layer4": 224 // output_stride}
    channels = {"stem": 64, "layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}
    assert {k: v.shape for k, v in taps.items()} == {
        k: (1, sizes[k], sizes[k], channels[k]) for k in sizes
    }


def test_tiny_resnet_shapes_and_dilation_keeps_content(tiny):
    _, variables, _ = tiny
    encoder = {c: variables[c]["encoder"] for c in ("params", "batch_stats")}
    x = normal((1, 224, 224, 3), seed=2)
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
    taps = jax.eval_shape(model.apply, abstract_init(model, x), x)
    for name, stride in [("stem", 2), ("layer1", 4), ("layer2", 8), ("layer4", 16)]:
        assert taps[name].shape[1:3] == (-(-65 // stride), -(-97 // stride))


def test_batchnorm_train_vs_eval(tiny):
    _, variables, _ = tiny
    encoder = {c: variables[c]["encoder"] for c in ("params", "batch_stats")}
    model = ResNet((1, 1, 1, 1), width=8)
    x = 3.0 * normal((2, 32, 32, 3), seed=3) + 1.0
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
    variables = abstract_init(model, x)
    assert (
        count_params(variables["params"]) == 3_504_872 - 1_281_000
    )  # torchvision minus classifier
    expected = {"stem": (112, 16), "layer1": (56, 24), "layer2": (28, 32)}
    for os, last in [(32, 1280), (8, None)]:
        model = MobileNetV2(output_stride=os, last_channels=last)
        taps = jax.eval_shape(model.apply, abstract_init(model, x), x)
        exp = expected | {"layer3": (224 // min(16, os), 96), "layer4": (224 // os, last or 320)}
        assert {k: v.shape for k, v in taps.items()} == {
            k: (1, s, s, c) for k, (s, c) in exp.items()
        }


def test_mobilenet_v2_dilation_keeps_content():
    x = normal((1, 64, 64, 3), seed=4)
    variables = numpy_variables(MobileNetV2(width=0.25), x)
    out = {
        os: jax.jit(MobileNetV2(width=0.25, output_stride=os).apply)(variables, x)["layer4"]
        for os in (32, 8)
    }
    assert out[8].shape == (1, 8, 8, 1280)
    scale = float(jnp.abs(out[32]).max())
    np.testing.assert_allclose(out[8][:, ::4, ::4], out[32], atol=1e-4 * scale)
