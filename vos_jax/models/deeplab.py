"""DeepLabv3+ head (Chen et al., "Encoder-Decoder with Atrous Separable Convolution for Semantic
Image Segmentation", ECCV 2018): ASPP on the encoder output, then a decoder that fuses it with the
stride-4 tap and returns stride-4 features (FEELVOS uses these, 256 channels).

- ASPP (Sec. 3.1 and DeepLabv3): a 1x1 conv, three 3x3 atrous convs at rates (6, 12, 18) for
  output stride 16 (scaled by 16 / output_stride: doubled at 8, halved at 32), image pooling
  (global mean, 1x1 conv, broadcast back), concatenated and projected by a 1x1 conv. Every conv
  is followed by BN + ReLU. No dropout (the official code's 0.9 keep-prob is left out).
- Decoder (Sec. 3.1, Fig. 2): the stride-4 tap reduced to 48 channels by a 1x1 conv,
  concatenated with the bilinearly upsampled ASPP output, two 3x3 convs of 256 channels.
  `separable=True` uses depthwise-separable 3x3 convs in ASPP and decoder as the Xception
  DeepLabv3+ that FEELVOS builds on (Sec. 3.2); False gives torchvision-style dense convs.

The image-pooling branch sees a 1x1 map: in training with batch size 1 its BatchNorm batch
variance is 0 (the same holds in PyTorch); train with B >= 2 or fine-tune with frozen BN.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Array, Float

from vos_jax.dtypes import accumulation_dtype
from vos_jax.models.layers import ConvBNReLU, SeparableConv, upsample_aligned

Dtype = Any


def scaled_atrous_rates(rates: tuple[int, ...], output_stride: int) -> tuple[int, ...]:
    """ASPP rates given for output stride 16, rescaled to `output_stride` (at least 1)."""
    return tuple(max(1, r * 16 // output_stride) for r in rates)


def _conv3x3(separable: bool, features: int, dilation: int, dtype: Dtype, name: str):
    if separable:
        return SeparableConv(features, 3, dilation=dilation, dtype=dtype, name=name)
    return ConvBNReLU(features, 3, dilation=dilation, dtype=dtype, name=name)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling; returns [B, h, w, channels] at the encoder's stride."""

    channels: int = 256
    atrous_rates: tuple[int, ...] = (6, 12, 18)  # at output stride 16
    output_stride: int = 16
    separable: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Float[Array, "B h w C"], train: bool) -> Float[Array, "B h w F"]:
        branches = [ConvBNReLU(self.channels, 1, dtype=self.dtype, name="conv1x1")(x, train)]
        for i, rate in enumerate(scaled_atrous_rates(self.atrous_rates, self.output_stride)):
            conv = _conv3x3(self.separable, self.channels, rate, self.dtype, f"atrous{i}")
            branches.append(conv(x, train))
        pooled = jnp.mean(x.astype(accumulation_dtype(x.dtype)), axis=(1, 2), keepdims=True)
        pooled = pooled.astype(x.dtype)
        pooled = ConvBNReLU(self.channels, 1, dtype=self.dtype, name="image_pooling")(pooled, train)
        # Bilinear upsampling of a 1x1 map is a broadcast.
        branches.append(jnp.broadcast_to(pooled, x.shape[:3] + (self.channels,)))
        x = jnp.concatenate(branches, axis=-1)
        return ConvBNReLU(self.channels, 1, dtype=self.dtype, name="projection")(x, train)


class DeepLabV3Plus(nn.Module):
    """ASPP + decoder: (encoder output at `output_stride`, tap at `low_level_stride`) ->
    [B, h, w, decoder_channels] at the low-level tap's resolution (stride 4)."""

    aspp_channels: int = 256
    decoder_channels: int = 256
    low_level_channels: int = 48
    atrous_rates: tuple[int, ...] = (6, 12, 18)
    output_stride: int = 16
    low_level_stride: int = 4
    separable: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, high: Float[Array, "B hh ww Ch"], low: Float[Array, "B h w Cl"], train: bool
    ) -> Float[Array, "B h w F"]:
        x = ASPP(
            self.aspp_channels,
            self.atrous_rates,
            self.output_stride,
            self.separable,
            dtype=self.dtype,
            name="aspp",
        )(high, train)
        low = ConvBNReLU(self.low_level_channels, 1, dtype=self.dtype, name="low_level_reduce")(
            low, train
        )
        factor = self.output_stride / self.low_level_stride
        x = upsample_aligned(x, low.shape[1:3], factor)
        x = jnp.concatenate([x, low.astype(x.dtype)], axis=-1)
        for i in range(2):
            x = _conv3x3(self.separable, self.decoder_channels, 1, self.dtype, f"decoder{i}")(
                x, train
            )
        return x
