"""MediaPipe Selfie Segmentation (the RGB-only successor of the mobile video segmentation model):
a MobileNetV3-small-like encoder, an LR-ASPP head and a decoder of gated skips, exactly the graph
of `selfie_segmentation.tflite` (../shared/fixtures/mediapipe/selfie_segmentation.ops.txt; the
landscape model is the same graph at 144x256).

- stem: 3x3 stride-2 conv, hard-swish.
- bottlenecks (`Bneck`): 1x1 expansion, kxk depthwise conv (stride 1 or 2), each followed by
  ReLU or hard-swish; optionally squeeze-excite (global mean, 1x1 + ReLU, 1x1 + sigmoid, scale);
  1x1 projection; a residual sum where the shape allows.
- LR-ASPP: 1x1 conv + ReLU of the last feature, scaled by a sigmoid gate of its global mean.
- decoder, for each finer resolution (the last encoder feature at that size is the skip):
  bilinear resize to the skip's size, 1x1 conv to its width; the skip is scaled by a
  squeeze-excite gate of (skip + upsampled) and added to the upsampled path; then a 1x1 conv +
  ReLU and a residual 3x3 depthwise conv + ReLU.
- a 2x2 stride-2 transposed conv to `classes` logits at the input size (the graph's sigmoid is
  left to the caller).

Padding is TensorFlow's SAME; bilinear resizing uses half-pixel centres (RESIZE_BILINEAR, as
`jax.image.resize`). Input RGB in 0..1, H and W multiples of 16 (or as the landscape model's 144).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from vos_jax.models.layers import DepthwiseConv, conv_general_dilated, transposed_conv_bias

Dtype = Any


class Bneck(NamedTuple):
    """A MobileNetV3 bottleneck: expansion width, output width, depthwise kernel and stride,
    squeeze-excite width (0: none), activation ("relu" or "hswish")."""

    expand: int
    out: int
    kernel: int
    stride: int
    squeeze: int
    act: str


VARIANTS = {
    # selfie_segmentation.tflite (and _landscape): 106,401 parameters.
    "paper": dict(
        stem=16,
        blocks=(
            Bneck(16, 16, 3, 2, 8, "relu"), Bneck(72, 24, 3, 2, 0, "relu"),
            Bneck(88, 24, 3, 1, 0, "relu"), Bneck(96, 32, 5, 2, 24, "hswish"),
            Bneck(128, 32, 5, 1, 32, "hswish"), Bneck(128, 32, 5, 1, 32, "hswish"),
            Bneck(96, 32, 5, 1, 24, "hswish"), Bneck(96, 32, 5, 1, 24, "hswish"),
        ),
        aspp=128,
    ),
    "tiny": dict(
        stem=8,
        blocks=(
            Bneck(8, 8, 3, 2, 4, "relu"), Bneck(16, 8, 3, 2, 0, "relu"),
            Bneck(16, 16, 5, 2, 8, "hswish"), Bneck(16, 16, 5, 1, 8, "hswish"),
        ),
        aspp=16,
    ),
}  # fmt: skip

ACTIVATIONS = {"relu": nn.relu, "hswish": jax.nn.hard_swish}


class SelfieNet(nn.Module):
    """The selfie segmentation network (module docstring)."""

    stem: int = VARIANTS["paper"]["stem"]
    blocks: tuple[Bneck, ...] = VARIANTS["paper"]["blocks"]
    aspp: int = VARIANTS["paper"]["aspp"]
    classes: int = 1
    in_channels: int = 3
    dtype: Dtype = jnp.float32

    def __post_init__(self):
        # Blocks saved as JSON lists (a published model's overrides) become Bnecks again.
        object.__setattr__(self, "blocks", tuple(Bneck(*b) for b in self.blocks))
        super().__post_init__()

    def _conv(self, features, kernel=1, strides=1, name=None):
        return nn.Conv(
            features, (kernel, kernel), strides=strides, padding="SAME", dtype=self.dtype,
            name=name, conv_general_dilated=conv_general_dilated,
        )  # fmt: skip

    def _gate(self, x, squeeze, name):
        """Squeeze-excite: sigmoid(1x1(ReLU(1x1(global mean of x)))) [B, 1, 1, C]."""
        pooled = jnp.mean(x, axis=(1, 2), keepdims=True)
        hidden = nn.relu(self._conv(squeeze, name=f"{name}_squeeze")(pooled))
        return jax.nn.sigmoid(self._conv(x.shape[-1], name=f"{name}_excite")(hidden))

    @nn.compact
    def __call__(self, x: Float[ArrayLike, "B H W I"]) -> Float[Array, "B H W K"]:
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"SelfieNet takes {self.in_channels} channels, got {x.shape[-1]}")
        y = jnp.asarray(x, self.dtype)
        y = jax.nn.hard_swish(self._conv(self.stem, 3, 2, name="stem")(y))
        skips = {y.shape[1:3]: y}  # the last feature at each resolution
        for i, b in enumerate(self.blocks):
            act, name = ACTIVATIONS[b.act], f"block{i}"
            h = act(self._conv(b.expand, name=f"{name}_expand")(y))
            h = DepthwiseConv(b.kernel, b.stride, dtype=self.dtype, tf_same=True,
                              name=f"{name}_depthwise")(h)  # fmt: skip
            h = act(h)
            if b.squeeze:
                h = h * self._gate(h, b.squeeze, f"{name}_se")
            h = self._conv(b.out, name=f"{name}_project")(h)
            y = h + y if h.shape == y.shape else h
            skips[y.shape[1:3]] = y
        # LR-ASPP
        pooled = jnp.mean(y, axis=(1, 2), keepdims=True)
        gate = jax.nn.sigmoid(self._conv(self.aspp, name="aspp_gate")(pooled))
        y = nn.relu(self._conv(self.aspp, name="aspp_conv")(y)) * gate
        finer = [size for size in skips if size[0] > y.shape[1]]
        for i, size in enumerate(sorted(finer)):  # coarse to fine
            skip, name = skips[size], f"decoder{i}"
            y = jax.image.resize(y, (y.shape[0], *size, y.shape[-1]), "bilinear")
            y = self._conv(skip.shape[-1], name=f"{name}_project")(y)
            y = skip * self._gate(skip + y, skip.shape[-1], f"{name}_se") + y
            y = nn.relu(self._conv(skip.shape[-1], name=f"{name}_conv")(y))
            y = y + nn.relu(DepthwiseConv(3, dtype=self.dtype, name=f"{name}_depthwise")(y))
        return transposed_conv_bias(self, y, self.classes, 2, "head", self.dtype)
