"""Google's mobile real-time video segmentation (SPEC section 4): the frame plus the previous
frame's mask in, a person (or hair) mask out, as MediaPipe's `hair_segmentation.tflite` builds it.

`HairNet` has exactly that graph (`../shared/fixtures/mediapipe/hair_segmentation.ops.txt`): an
ENet-style hourglass. A stem of two 2x2 stride-2 convs; three downsampling bottlenecks, each a
2x2 stride-2 conv squeezed to `mid` channels in the main path and 2x2 max pooling *with argmax*
(+ a 1x1 projection when the width changes) in the shortcut; residual bottlenecks squeezed to 16,
8 or 4 channels (`regular`: two 3x3 depthwise convs, the first followed by a 1x1; `dilated`: a
3x3 conv, dilation 1, 2, 4 or 8; `wide`: a 5x5 depthwise conv, where ENet has its asymmetric
5x1 / 1x5 pair); a decoder whose upsampling bottlenecks unpool the shortcut at the positions of
the encoder's maxima and upsample the main path with a 3x3 stride-2 transposed conv, then
concatenate the encoder's feature of that size; two 2x2 transposed convs to full size. Every conv
has a bias (the graph folds any normalisation into them) and every activation is a PReLU.
Padding is TensorFlow's SAME (0 before, 1 after for stride 2), not PyTorch's symmetric padding.

Inputs NHWC, values 0..1: RGB, then (`in_channels` 4) the previous mask. Output: logits
[B, H, W, classes] (background, foreground), no softmax (the graph has none). H and W: multiples
of 32. An upsampling block's output width is that of the input of the encoder block it unpools.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from vos_jax.models import selfie
from vos_jax.models.layers import DepthwiseConv, conv_general_dilated, transposed_conv_bias

Dtype = Any


class Block(NamedTuple):
    """One bottleneck: `kind` in down / regular / dilated / wide / up; `mid`: squeezed width;
    `out`: output width (None: the input's); `dilation` (dilated); `concat` (up: concatenate
    the encoder feature of the output size)."""

    kind: str
    mid: int
    out: int | None = None
    dilation: int = 1
    concat: bool = False


def _hair_encoder(m64: int, m32: int, m16: int, m8: int, m4: int, w64: int, w32: int):
    bottom = (
        Block("regular", m8), Block("dilated", m8, dilation=2), Block("wide", m8),
        Block("dilated", m8, dilation=4), Block("regular", m8), Block("dilated", m8, dilation=8),
    )  # fmt: skip
    return (
        (Block("down", m16, w64), Block("regular", m16), Block("regular", m16))
        + (Block("down", m32, w32),) + (Block("regular", m16),) * 4
        + (Block("down", m16, w32),) + bottom + bottom + (Block("dilated", m4),)
    )  # fmt: skip


def _hair_decoder(m8: int, m4: int, w64: int, w32: int, w128: int):
    return (
        Block("up", m8, w32, concat=True), Block("dilated", m8, w32),
        Block("up", m8, w64, concat=True), Block("dilated", m4, w64),
        Block("up", m4, w128), Block("dilated", m4),
    )  # fmt: skip


HAIR_VARIANTS = {
    # hair_segmentation.tflite: 181,506 parameters.
    "paper": dict(
        stem=(8, 32),
        encoder=_hair_encoder(m64=16, m32=32, m16=16, m8=8, m4=4, w64=64, w32=128),
        decoder=_hair_decoder(m8=8, m4=4, w64=64, w32=128, w128=32),
        head=8,
    ),
    "tiny": dict(
        stem=(4, 8),
        encoder=(
            Block("down", 4, 16), Block("regular", 4), Block("down", 4, 16), Block("regular", 4),
            Block("down", 4, 16), Block("dilated", 4, dilation=2), Block("wide", 4),
        ),
        decoder=(
            Block("up", 4, 16, concat=True), Block("dilated", 4, 16),
            Block("up", 4, 16, concat=True), Block("dilated", 4, 16),
            Block("up", 4, 8), Block("dilated", 4),
        ),
        head=4,
    ),
}  # fmt: skip


class PReLU(nn.Module):
    """max(x, 0) + alpha min(x, 0), one alpha per channel (Keras' PReLU shared over H and W)."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Float[Array, "*B C"]) -> Float[Array, "*B C"]:
        alpha = self.param("alpha", nn.initializers.constant(0.25), (x.shape[-1],), jnp.float32)
        return jnp.where(x >= 0, x, x * alpha.astype(self.dtype))


def max_pool_argmax(x: Float[Array, "B H W C"]) -> tuple[Array, Int[Array, "B h w C"]]:
    """2x2 stride-2 max pooling and the position of each window's maximum, as TFLite's
    `MaxPoolingWithArgmax2D`: index 2 dx + dy (column-major), the first in that order on ties
    (ties are common: PReLU maps flat image regions to equal values, and which one is picked
    decides where `max_unpool` writes)."""
    b, h, w, c = x.shape
    windows = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 4, 2)  # [.., dx, dy]
    windows = windows.reshape(b, h // 2, w // 2, c, 4)
    return windows.max(-1), jnp.argmax(windows, -1)


def max_unpool(x: Float[Array, "B h w C"], index: Int[Array, "B h w C"]) -> Float[Array, "B H W C"]:
    """Each value written back to the position `index` (2 dx + dy) of its 2x2 window, zeros
    elsewhere (TFLite's `MaxUnpooling2D`)."""
    b, h, w, c = x.shape
    spread = x[..., None] * jax.nn.one_hot(index, 4, dtype=x.dtype)  # [B, h, w, C, 4]
    spread = spread.reshape(b, h, w, c, 2, 2).transpose(0, 1, 5, 2, 4, 3)  # [B, h, dy, w, dx, C]
    return spread.reshape(b, 2 * h, 2 * w, c)


class HairNet(nn.Module):
    """The hair / portrait segmentation hourglass (module docstring). `stem`: widths of the two
    stride-2 convs; `encoder`, `decoder`: `Block`s; `head`: width of the first of the two final
    transposed convs; `in_channels`: 4 (RGB + previous mask) or 3 (RGB)."""

    stem: tuple[int, int] = HAIR_VARIANTS["paper"]["stem"]
    encoder: tuple[Block, ...] = HAIR_VARIANTS["paper"]["encoder"]
    decoder: tuple[Block, ...] = HAIR_VARIANTS["paper"]["decoder"]
    head: int = HAIR_VARIANTS["paper"]["head"]
    classes: int = 2
    in_channels: int = 4
    dtype: Dtype = jnp.float32

    def __post_init__(self):
        # Blocks saved as JSON lists (a published model's overrides) become Blocks again.
        for key in ("encoder", "decoder"):
            object.__setattr__(self, key, tuple(Block(*b) for b in getattr(self, key)))
        object.__setattr__(self, "stem", tuple(self.stem))
        super().__post_init__()

    @classmethod
    def variant(cls, name: str, **overrides: Any) -> HairNet:
        return cls(**{**HAIR_VARIANTS[name], **overrides})

    def _conv(self, features, kernel, strides=1, dilation=1, padding="SAME", name=None):
        return nn.Conv(
            features, (kernel, kernel), strides=strides, padding=padding,
            kernel_dilation=dilation, dtype=self.dtype, name=name,
            conv_general_dilated=conv_general_dilated,
        )  # fmt: skip

    def _block(self, x, block: Block, name: str, pools: dict, skips: dict):
        act = lambda y, part: PReLU(self.dtype, name=f"{name}_{part}_act")(y)
        width = x.shape[-1]
        out = block.out or width
        mid = block.mid
        shortcut = x
        if block.kind == "down":
            y = act(self._conv(mid, 2, 2, padding="VALID", name=f"{name}_reduce")(x), "reduce")
            shortcut, pools[y.shape[1]] = max_pool_argmax(x)
            self.sow("intermediates", f"{name}_argmax", pools[y.shape[1]])  # for parity tests
        elif block.kind == "up":
            y = act(self._conv(mid, 1, name=f"{name}_reduce")(x), "reduce")
            y = transposed_conv_bias(self, y, mid, 3, f"{name}_upsample", self.dtype)
            y = act(y, "upsample")
        else:
            y = act(self._conv(mid, 1, name=f"{name}_reduce")(x), "reduce")
        if block.kind in ("down", "regular"):
            y = DepthwiseConv(3, dtype=self.dtype, name=f"{name}_depthwise0")(y)
            y = act(self._conv(mid, 1, name=f"{name}_pointwise")(y), "pointwise")
            y = act(DepthwiseConv(3, dtype=self.dtype, name=f"{name}_depthwise1")(y), "depthwise")
        elif block.kind == "dilated":
            y = act(self._conv(mid, 3, dilation=block.dilation, name=f"{name}_conv")(y), "conv")
        elif block.kind == "wide":
            y = DepthwiseConv(5, dtype=self.dtype, name=f"{name}_depthwise0")(y)
            y = act(self._conv(mid, 1, name=f"{name}_pointwise")(y), "pointwise")
        elif block.kind != "up":
            raise ValueError(f"unknown block kind {block.kind!r}")
        y = self._conv(out, 1, name=f"{name}_expand")(y)
        if block.kind == "up":
            shortcut = self._conv(out, 1, name=f"{name}_project")(x)
            shortcut = max_unpool(shortcut, pools[x.shape[1]])
        elif width != out:
            shortcut = self._conv(out, 1, name=f"{name}_project")(shortcut)
        y = act(y + shortcut, "out")
        if block.kind == "down":
            skips[y.shape[1]] = y
        if block.concat:
            y = jnp.concatenate([y, skips[y.shape[1]]], axis=-1)
        return y

    @nn.compact
    def __call__(self, x: Float[ArrayLike, "B H W I"]) -> Float[Array, "B H W K"]:
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"HairNet takes {self.in_channels} channels, got {x.shape[-1]}")
        if x.shape[1] % 32 or x.shape[2] % 32:  # the stem and three downsamplings halve 5 times
            raise ValueError(f"HairNet needs H and W multiples of 32, got {x.shape[1:3]}")
        y = jnp.asarray(x, self.dtype)
        for i, width in enumerate(self.stem):
            y = self._conv(width, 2, 2, padding="VALID", name=f"stem{i}")(y)
            y = PReLU(self.dtype, name=f"stem{i}_act")(y)
        pools, skips = {}, {}  # by spatial size: argmax of each down block, its output
        for i, block in enumerate(self.encoder):
            y = self._block(y, block, f"encoder{i}", pools, skips)
        for i, block in enumerate(self.decoder):
            y = self._block(y, block, f"decoder{i}", pools, skips)
        y = transposed_conv_bias(self, y, self.head, 2, "head0", self.dtype)
        y = PReLU(self.dtype, name="head_act")(y)
        return transposed_conv_bias(self, y, self.classes, 2, "head1", self.dtype)


ARCHITECTURES = {"hair": HairNet, "selfie": selfie.SelfieNet}
PortraitModel = HairNet | selfie.SelfieNet

# The portrait family's variants: the hair graph (RGB + previous mask) and the selfie graph (RGB).
VARIANTS = {
    "paper": {"arch": "hair", **HAIR_VARIANTS["paper"]},
    "tiny": {"arch": "hair", **HAIR_VARIANTS["tiny"]},
    "selfie": {"arch": "selfie", **selfie.VARIANTS["paper"]},
    "selfie_tiny": {"arch": "selfie", **selfie.VARIANTS["tiny"]},
}


def build(arch: str = "hair", **kwargs: Any) -> nn.Module:
    """The portrait family's model: `arch` "hair" (HairNet) or "selfie" (SelfieNet)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"portrait arch: expected one of {list(ARCHITECTURES)}, got {arch!r}")
    return ARCHITECTURES[arch](**kwargs)
