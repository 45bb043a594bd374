"""Backbones shared by FEELVOS, RVOS and SiamMask: ResNet and MobileNetV2 with an output stride.

- `ResNet` (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016): a copy of
  torchvision's layout (stride on the bottleneck's 3x3 conv, "ResNet v1.5"), parameter names
  (`conv1`, `bn1`, `layer3_5/conv2`, `layer2_0/downsample_conv`, ...) and padding, so its
  weights import one-to-one. Parameter counts equal torchvision's without the fc layer:
  resnet34 21,284,672; resnet50 23,508,032; resnet101 42,500,160.
- `MobileNetV2` (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
  CVPR 2018): torchvision's layout; 2,223,872 parameters at width 1.0 without the classifier.

Both return a dict of taps {"stem", "layer1", "layer2", "layer3", "layer4"} at strides
2, 4, 8, min(16, output_stride), output_stride. `output_stride` in {8, 16, 32} replaces the
last strides by dilation (DeepLab, Chen et al. ECCV 2018; torchvision's
`replace_stride_with_dilation`): the layer whose stride is removed keeps the previous dilation,
the layers after it use the doubled one. A spatial size n becomes ceil(n / stride) (symmetric
PyTorch padding; no input padding needed). Inputs are already normalised; no classifier.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from vos_jax.models.layers import (
    BN_EPSILON,
    BN_MOMENTUM,
    KAIMING_FAN_OUT,
    ConvBNReLU,
    conv_general_dilated,
    conv_padding,
)

Dtype = Any
Taps = dict[str, Float[Array, "B _h _w _C"]]  # sizes differ per tap (`_`: names, not checked)

RESNETS = {  # torchvision depths
    "resnet18": dict(stage_sizes=(2, 2, 2, 2), bottleneck=False),
    "resnet34": dict(stage_sizes=(3, 4, 6, 3), bottleneck=False),
    "resnet50": dict(stage_sizes=(3, 4, 6, 3), bottleneck=True),
    "resnet101": dict(stage_sizes=(3, 4, 23, 3), bottleneck=True),
    "resnet152": dict(stage_sizes=(3, 8, 36, 3), bottleneck=True),
}
# MobileNetV2 inverted residual groups (t expansion, c channels, n blocks, s stride), Table 2.
MOBILENET_V2_GROUPS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_MOBILENET_TAPS = {0: "stem", 1: "layer1", 2: "layer2", 4: "layer3"}  # group index -> tap name


def dilation_schedule(
    strides: tuple[int, ...], output_stride: int, input_stride: int
) -> list[tuple[int, int, int]]:
    """Per stage (stride, dilation of its first block, dilation of the others): strides that would
    take the total past `output_stride` become dilation (DeepLab / torchvision semantics)."""
    if output_stride not in (8, 16, 32):
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
    current, dilation, schedule = input_stride, 1, []
    for stride in strides:
        if current * stride > output_stride:
            schedule.append((1, dilation, dilation * stride))
            dilation *= stride
        else:
            schedule.append((stride, dilation, dilation))
            current *= stride
    return schedule


def _conv(features, kernel, dtype, name, strides=1, dilation=1):
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=strides,
        padding=conv_padding(kernel, dilation),
        kernel_dilation=dilation,
        use_bias=False,
        dtype=dtype,
        kernel_init=KAIMING_FAN_OUT,
        conv_general_dilated=conv_general_dilated,
        name=name,
    )


def _norm(train, dtype, name):
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        dtype=dtype,
        name=name,
    )


class ResidualBlock(nn.Module):
    """torchvision's Bottleneck (1x1, 3x3 with stride and dilation, 1x1 x4) or BasicBlock (two
    3x3; torchvision refuses dilation > 1 there, here it is allowed for DeepLab-style use)."""

    planes: int
    bottleneck: bool = True
    strides: int = 1
    dilation: int = 1
    downsample: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Float[Array, "B H W C"], train: bool) -> Float[Array, "B h w F"]:
        conv = functools.partial(_conv, dtype=self.dtype)
        norm = functools.partial(_norm, train, self.dtype)
        d = self.dilation
        if self.bottleneck:
            out_features = 4 * self.planes
            y = nn.relu(norm("bn1")(conv(self.planes, 1, name="conv1")(x)))
            y = conv(self.planes, 3, strides=self.strides, dilation=d, name="conv2")(y)
            y = nn.relu(norm("bn2")(y))
            y = norm("bn3")(conv(out_features, 1, name="conv3")(y))
        else:
            out_features = self.planes
            y = conv(self.planes, 3, strides=self.strides, dilation=d, name="conv1")(x)
            y = nn.relu(norm("bn1")(y))
            y = norm("bn2")(conv(self.planes, 3, dilation=d, name="conv2")(y))
        if self.downsample:
            x = conv(out_features, 1, strides=self.strides, name="downsample_conv")(x)
            x = norm("downsample_bn")(x)
        return nn.relu(y + x)


class ResNet(nn.Module):
    """ResNet feature extractor (He et al. CVPR 2016) with DeepLab output stride.

    `width` is the stem width (64 in the paper); stage widths are width * (1, 2, 4, 8) (x4 at the
    output of bottleneck blocks). A test-size variant: `ResNet((1, 1, 1, 1), width=8)`.
    """

    stage_sizes: tuple[int, ...] = (3, 4, 23, 3)
    bottleneck: bool = True
    width: int = 64
    output_stride: int = 32
    dtype: Dtype = jnp.float32

    @classmethod
    def from_name(cls, name: str, **kwargs: Any) -> ResNet:
        """`ResNet.from_name("resnet101", output_stride=16)`; names in `RESNETS`."""
        return cls(**{**RESNETS[name], **kwargs})

    @nn.compact
    def __call__(self, x: Float[ArrayLike, "B H W 3"], train: bool = False) -> Taps:
        x = _conv(self.width, 7, self.dtype, "conv1", strides=2)(x)
        x = nn.relu(_norm(train, self.dtype, "bn1")(x))
        taps = {"stem": x}
        # MaxPool2d(3, 2, padding=1): padded with -inf, as PyTorch.
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        schedule = dilation_schedule((1, 2, 2, 2), self.output_stride, input_stride=4)
        in_features = self.width
        for stage, (blocks, (stride, first_dilation, dilation)) in enumerate(
            zip(self.stage_sizes, schedule, strict=True)
        ):
            planes = self.width * 2**stage
            out_features = planes * (4 if self.bottleneck else 1)
            for block in range(blocks):
                x = ResidualBlock(
                    planes,
                    self.bottleneck,
                    strides=stride if block == 0 else 1,
                    dilation=first_dilation if block == 0 else dilation,
                    downsample=block == 0 and (stride != 1 or in_features != out_features),
                    dtype=self.dtype,
                    name=f"layer{stage + 1}_{block}",
                )(x, train)
            in_features = out_features
            taps[f"layer{stage + 1}"] = x
        return taps


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of `divisor`, not below 90% of `value` (torchvision)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (ReLU6), 3x3 depthwise (ReLU6), linear 1x1 projection; a
    residual connection when the shape is kept (Sandler et al. CVPR 2018, Fig. 3b)."""

    features: int
    expand_ratio: int
    strides: int = 1
    dilation: int = 1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Float[Array, "B H W C"], train: bool) -> Float[Array, "B h w F"]:
        in_features = x.shape[-1]
        hidden = int(round(in_features * self.expand_ratio))
        y = x
        if self.expand_ratio != 1:
            y = ConvBNReLU(hidden, 1, activation=nn.relu6, dtype=self.dtype, name="expand")(
                y, train
            )
        y = ConvBNReLU(
            hidden,
            3,
            self.strides,
            self.dilation,
            groups=hidden,
            activation=nn.relu6,
            dtype=self.dtype,
            name="depthwise",
        )(y, train)
        y = ConvBNReLU(self.features, 1, activation=None, dtype=self.dtype, name="project")(
            y, train
        )
        if self.strides == 1 and in_features == self.features:
            y = x + y
        return y


class MobileNetV2(nn.Module):
    """MobileNetV2 feature extractor with width multiplier and DeepLab output stride.

    Taps: "stem" (stride 2, after the first block group, 16 ch at width 1), "layer1" (4, 24 ch),
    "layer2" (8, 32 ch), "layer3" (16, 96 ch), "layer4" (output stride: 320 ch, or
    `last_channels` after the final 1x1 conv; DeepLab drops that conv: `last_channels=None`).
    """

    width: float = 1.0
    output_stride: int = 32
    last_channels: int | None = 1280
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Float[Array, "B H W 3"], train: bool = False) -> Taps:
        stem = make_divisible(32 * self.width)
        x = ConvBNReLU(stem, 3, 2, activation=nn.relu6, dtype=self.dtype, name="stem")(x, train)
        strides = tuple(group[3] for group in MOBILENET_V2_GROUPS)
        schedule = dilation_schedule(strides, self.output_stride, input_stride=2)
        taps = {}
        for g, ((t, c, n, _), (stride, first_dilation, dilation)) in enumerate(
            zip(MOBILENET_V2_GROUPS, schedule, strict=True)
        ):
            for i in range(n):
                x = InvertedResidual(
                    make_divisible(c * self.width),
                    t,
                    strides=stride if i == 0 else 1,
                    dilation=first_dilation if i == 0 else dilation,
                    dtype=self.dtype,
                    name=f"block{g}_{i}",
                )(x, train)
            if g in _MOBILENET_TAPS:
                taps[_MOBILENET_TAPS[g]] = x
        if self.last_channels is not None:
            last = make_divisible(self.last_channels * max(1.0, self.width))
            x = ConvBNReLU(last, 1, activation=nn.relu6, dtype=self.dtype, name="last")(x, train)
        taps["layer4"] = x
        return taps


def make_backbone(
    name: str,
    *,
    output_stride: int = 32,
    width: float | None = None,
    stage_sizes: tuple[int, ...] | None = None,
    dtype: Dtype = jnp.float32,
) -> nn.Module:
    """A backbone by name ("resnet18/34/50/101/152", "mobilenet_v2"), as configs spell it.

    `width`: ResNet stem width (default 64) or MobileNetV2 multiplier (default 1.0);
    `stage_sizes` overrides a ResNet's blocks per stage (tiny variants). The MobileNetV2 returned
    here drops the final 1x1 conv, as DeepLab does.
    """
    if name == "mobilenet_v2":
        if stage_sizes is not None:
            raise ValueError("stage_sizes applies to ResNets only")
        return MobileNetV2(
            width=1.0 if width is None else width,
            output_stride=output_stride,
            last_channels=None,
            dtype=dtype,
        )
    if name not in RESNETS:
        raise ValueError(f"unknown backbone {name!r}; choose from {[*RESNETS, 'mobilenet_v2']}")
    kwargs: dict[str, Any] = dict(output_stride=output_stride, dtype=dtype)
    if width is not None:
        kwargs["width"] = int(width)
    if stage_sizes is not None:
        kwargs["stage_sizes"] = tuple(stage_sizes)
    return ResNet.from_name(name, **kwargs)
