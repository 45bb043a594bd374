"""SiamMask (Wang et al., "Fast Online Object Tracking and Segmentation: A Unifying Approach",
CVPR 2019) as a Flax Linen module: the "sharp" model of the official code
(foolwood/SiamMask experiments/siammask_sharp/custom.py `Custom`), SPEC section 3.

    model = SiamMask.variant("paper")
    zf = model.apply(v, template, method=SiamMask.template)  # [B, 127, 127, 3] -> [B, 7, 7, 256]
    out = model.apply(v, zf, search, method=SiamMask.track)  # [B, 255, 255, 3] -> `Track`
    logits = model.apply(v, out.skips, out.corr, pos, method=SiamMask.refine)  # [B, 127, 127]

Inputs are what the official tracker feeds: float BGR values 0..255, not normalised (OpenCV crops).
Parameter names follow the official modules (`features` -> `backbone` + `adjust`, `rpn_model.cls`
-> `cls`, `rpn_model.loc` -> `loc`, `mask_model.mask` -> `mask`, `refine_model` -> `refine`), so
`convert/siammask.py` maps them one to one.

The backbone is the official custom ResNet-50 (experiments/siammask_sharp/resnet.py), which is not
torchvision's: conv1 has no padding; the 3x3 conv of a block is padded `2 - stride` (0 in the
strided first block of layer2); the shortcuts of layer2 and layer3 are 3x3 convolutions (stride 2,
no padding in layer2; padding 1 in layer3); layer3 keeps stride 8 with dilation 2, except its first
block (dilation 1); layer4 is not built. Sizes: template 127 -> 61 (conv1), 31 (layer1), 15
(layer2, layer3); search 255 -> 125, 63, 31, 31. The adjust layer (1x1 conv + BN to 256) crops
maps narrower than 20 to their centre (template 15 -> 7, official `ResDownS`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from vos_jax.models.layers import BN_EPSILON, BN_MOMENTUM, conv_general_dilated
from vos_jax.ops.correlation import depthwise_xcorr

Dtype = Any

VARIANTS: dict[str, dict[str, Any]] = {
    "paper": dict(),  # ResNet-50 stages 1-3 at width 64, 256-channel adjust and heads
    # Tests: one bottleneck block per stage at width 8, 16-channel adjust and heads.
    "tiny": dict(stage_sizes=(1, 1, 1), width=8, adjust=16, hidden=16),
}

EXEMPLAR_SIZE = 127  # template crop; also the refined mask's side
INSTANCE_SIZE = 255  # search crop
TOTAL_STRIDE = 8
# The refine module's fixed geometry (official `Refine`): the correlation feature of one position
# is deconvolved to 15x15 and fused with 15x15 / 31x31 / 61x61 windows of layer2 / layer1 / conv1,
# whose strides are 8 / 4 / 2 in the search crop; the windows are taken from maps padded by
# 4 / 8 / 16 at stride 1 / 2 / 4 per score-map position (official `forward(..., test=True)`).
REFINE_SIZES = (15, 31, 61, EXEMPLAR_SIZE)
REFINE_PADS = (4, 8, 16)  # layer2, layer1, conv1
REFINE_STEPS = (1, 2, 4)


class Track(NamedTuple):
    """`SiamMask.track`'s output for a batch of search crops."""

    cls: Float[Array, "B s s A2"]  # RPN scores, channel = class * A + anchor (class 1: target)
    loc: Float[Array, "B s s A4"]  # RPN box deltas, channel = coordinate * A + anchor (dx dy dw dh)
    corr: Float[Array, "B s s K"]  # the mask branch's depthwise correlation
    skips: tuple  # (conv1 [B, 125, 125, w], layer1 [B, 63, 63, 4w], layer2 [B, 31, 31, 8w])


def _conv(features, kernel, dtype, name, strides=1, padding=0, dilation=1, bias=False):
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=strides,
        padding=((padding, padding), (padding, padding)),
        kernel_dilation=dilation,
        use_bias=bias,
        dtype=dtype,
        conv_general_dilated=conv_general_dilated,
        name=name,
    )


def _norm(train, dtype, name):
    """BatchNorm; `train` None: the caller passes `use_running_average` at call time."""
    return nn.BatchNorm(
        use_running_average=None if train is None else not train,
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        dtype=dtype,
        name=name,
    )


class Bottleneck(nn.Module):
    """The official `Bottleneck` (1x1, 3x3, 1x1 x4) with its own padding rule: the 3x3 conv is
    padded `dilation` when dilated, else `2 - stride`. `shortcut`: (kernel, stride, padding,
    dilation) of the projection shortcut of a stage's first block, or None (identity)."""

    planes: int
    strides: int = 1
    dilation: int = 1
    shortcut: tuple[int, int, int, int] | None = None
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        d, s = self.dilation, self.strides
        pad = d if d > 1 else 2 - s
        y = _conv(self.planes, 1, self.dtype, "conv1")(x)
        y = nn.relu(_norm(train, self.dtype, "bn1")(y))
        y = _conv(self.planes, 3, self.dtype, "conv2", strides=s, padding=pad, dilation=d)(y)
        y = nn.relu(_norm(train, self.dtype, "bn2")(y))
        y = _norm(train, self.dtype, "bn3")(_conv(4 * self.planes, 1, self.dtype, "conv3")(y))
        if self.shortcut is not None:
            k, ss, p, dd = self.shortcut
            x = _conv(4 * self.planes, k, self.dtype, "downsample_conv", ss, p, dd)(x)
            x = _norm(train, self.dtype, "downsample_bn")(x)
        return nn.relu(y + x)


class SiamResNet(nn.Module):
    """The official custom ResNet-50, stages 1-3 (module docstring); -> (conv1, layer1, layer2,
    layer3) outputs. Names as `backbones.ResNet` (`layer2_0/conv2`, `downsample_conv`)."""

    stage_sizes: tuple[int, int, int] = (3, 4, 6)
    width: int = 64
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = _conv(self.width, 7, self.dtype, "conv1", strides=2)(x)
        p0 = nn.relu(_norm(train, self.dtype, "bn1")(x))
        x = nn.max_pool(p0, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))  # -inf padded
        # Per stage: (stride, dilation of block 0, of the others, block 0's shortcut); official
        # `_make_layer(block, planes, blocks, stride, dilation)`.
        stages = (
            (1, 1, 1, (1, 1, 0, 1)),  # layer1: 1x1 shortcut (width change only)
            (2, 1, 1, (3, 2, 0, 1)),  # layer2: stride 2, 3x3 shortcut without padding
            (1, 1, 2, (3, 1, 1, 1)),  # layer3: dilation 2 after block 0, 3x3 shortcut
        )
        taps = [p0]
        for stage, (blocks, (stride, first, rest, shortcut)) in enumerate(
            zip(self.stage_sizes, stages, strict=True)
        ):
            for block in range(blocks):
                x = Bottleneck(
                    self.width * 2**stage,
                    strides=stride if block == 0 else 1,
                    dilation=first if block == 0 else rest,
                    shortcut=shortcut if block == 0 else None,
                    dtype=self.dtype,
                    name=f"layer{stage + 1}_{block}",
                )(x, train)
            taps.append(x)
        return tuple(taps)


class DepthCorr(nn.Module):
    """The official `DepthCorr`: 3x3 conv + BN + ReLU on the template and (separately) on the
    search features, their depthwise cross-correlation, then a 1x1 head (conv + BN + ReLU, conv
    with bias). `corr` and `head` are exposed: the refine module takes the correlation."""

    hidden: int
    out: int
    dtype: Dtype = jnp.float32

    def setup(self):
        self.conv_kernel = _conv(self.hidden, 3, self.dtype, "conv_kernel")
        self.bn_kernel = _norm(None, self.dtype, "bn_kernel")
        self.conv_search = _conv(self.hidden, 3, self.dtype, "conv_search")
        self.bn_search = _norm(None, self.dtype, "bn_search")
        self.head_conv = _conv(self.hidden, 1, self.dtype, "head_conv")
        self.head_bn = _norm(None, self.dtype, "head_bn")
        self.head_out = _conv(self.out, 1, self.dtype, "head_out", bias=True)

    def corr(self, zf, xf, train: bool = False):
        kernel = nn.relu(self.bn_kernel(self.conv_kernel(zf), use_running_average=not train))
        search = nn.relu(self.bn_search(self.conv_search(xf), use_running_average=not train))
        return depthwise_xcorr(search, kernel)

    def head(self, feature, train: bool = False):
        y = nn.relu(self.head_bn(self.head_conv(feature), use_running_average=not train))
        return self.head_out(y)

    def __call__(self, zf, xf, train: bool = False):
        return self.head(self.corr(zf, xf, train), train)


def nearest_upsample(x: Float[Array, "B h w C"], size: int) -> Float[Array, "B size size C"]:
    """PyTorch's `F.upsample(x, size)` (mode 'nearest'): source index floor(i * in / out), as the
    official refine module upsamples (not half-pixel nearest, as `jax.image.resize`)."""
    n = x.shape[1]
    index = np.minimum(np.floor(np.arange(size) * np.float32(n / size)).astype(np.int32), n - 1)
    return x[:, index][:, :, index]


class Refine(nn.Module):
    """The official `Refine` (the "sharp" mask): the correlation feature at one position, a 1x1
    map, is deconvolved to 15x15x32 and merged top-down with windows of layer2, layer1 and conv1
    (`v*`: their projections, `h*`: the top-down path), each merge followed by a nearest 2x-ish
    upsample and a 3x3 conv (`post*`); -> logits of the 127x127 mask."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, windows, feature: Float[Array, "N K"]) -> Float[Array, "N 127 127"]:
        p2, p1, p0 = windows  # [N, 15, 15, 8w], [N, 31, 31, 4w], [N, 61, 61, w]

        def pair(x, a, b, name):  # conv 3x3 + ReLU, twice (official `nn.Sequential`)
            x = nn.relu(_conv(a, 3, self.dtype, f"{name}_0", padding=1, bias=True)(x))
            return nn.relu(_conv(b, 3, self.dtype, f"{name}_1", padding=1, bias=True)(x))

        # ConvTranspose2d(K, 32, 15, stride 15) of a 1x1 map: each output pixel is its own
        # linear map of the feature, kernel [15, 15, K, 32].
        side = REFINE_SIZES[0]
        kernel = self.param(
            "deconv_kernel",
            nn.initializers.lecun_normal(in_axis=2, out_axis=3),
            (side, side, feature.shape[-1], 32),
        )
        bias = self.param("deconv_bias", nn.initializers.zeros, (32,))
        out = jnp.einsum("nk,yxkc->nyxc", feature.astype(self.dtype), kernel.astype(self.dtype))
        out = out + bias.astype(self.dtype)
        post = lambda a, name: _conv(a, 3, self.dtype, name, padding=1, bias=True)
        out = pair(out, 32, 32, "h2") + pair(p2, 128, 32, "v2")
        out = post(16, "post0")(nearest_upsample(out, REFINE_SIZES[1]))
        out = pair(out, 16, 16, "h1") + pair(p1, 64, 16, "v1")
        out = post(4, "post1")(nearest_upsample(out, REFINE_SIZES[2]))
        out = pair(out, 4, 4, "h0") + pair(p0, 16, 4, "v0")
        out = post(1, "post2")(nearest_upsample(out, REFINE_SIZES[3]))
        return out[..., 0]


def refine_windows(skips, pos: Int[ArrayLike, "B 2"], padded: bool = True):
    """The refine module's inputs at score-map position `pos` = (row, col) of each search crop:
    windows of the layer2 / layer1 / conv1 maps (`REFINE_STEPS`, `REFINE_SIZES`), zero-padded by
    `REFINE_PADS` as the official tracker takes them (`test=True`), unpadded as its training
    (`F.unfold`). -> (p2, p1, p0)."""
    p0, p1, p2 = skips
    out = []
    pads = REFINE_PADS if padded else (0, 0, 0)
    for x, pad, step, size in zip((p2, p1, p0), pads, REFINE_STEPS, REFINE_SIZES[:3], strict=True):
        source = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

        def window(image, rc, step=step, size=size):
            start = (rc[0] * step, rc[1] * step, jnp.zeros((), rc.dtype))
            return jax.lax.dynamic_slice(image, start, (size, size, image.shape[-1]))

        out.append(jax.vmap(window)(source, jnp.asarray(pos, jnp.int32)))
    return tuple(out)


class SiamMask(nn.Module):
    """The official "sharp" SiamMask (module docstring). `anchors`: anchors per position (5:
    ratios 0.33, 0.5, 1, 2, 3 at one scale); `mask_size`: side of the mask head's output (63, so
    3969 channels)."""

    stage_sizes: tuple[int, int, int] = (3, 4, 6)
    width: int = 64
    adjust: int = 256
    hidden: int = 256
    anchors: int = 5
    mask_size: int = 63
    dtype: Dtype = jnp.float32

    @classmethod
    def variant(cls, name: str, **overrides: Any) -> SiamMask:
        return cls(**{**VARIANTS[name], **overrides})

    def setup(self):
        self.backbone = SiamResNet(self.stage_sizes, self.width, self.dtype)
        self.adjust_conv = _conv(self.adjust, 1, self.dtype, "adjust_conv")
        self.adjust_bn = _norm(None, self.dtype, "adjust_bn")
        self.cls = DepthCorr(self.hidden, 2 * self.anchors, self.dtype)
        self.loc = DepthCorr(self.hidden, 4 * self.anchors, self.dtype)
        self.mask = DepthCorr(self.hidden, self.mask_size**2, self.dtype)
        self.refine_module = Refine(self.dtype)

    def features(self, x: Float[ArrayLike, "B H W 3"], train: bool = False, backbone_bn=None):
        """-> (skips (conv1, layer1, layer2), adjusted layer3 [B, h, w, adjust]). `train`: batch
        statistics in the adjust layer (and heads); `backbone_bn`: in the backbone too (default:
        as `train`; the official training keeps them frozen, `ResDown.unfix`)."""
        backbone_bn = train if backbone_bn is None else backbone_bn
        p0, p1, p2, p3 = self.backbone(jnp.asarray(x, self.dtype), backbone_bn)
        y = self.adjust_bn(self.adjust_conv(p3), use_running_average=not train)
        if y.shape[2] < 20:  # the template: keep the centre (official `ResDownS`)
            y = y[:, 4:-4, 4:-4]
        return (p0, p1, p2), y

    def template(self, z: Float[ArrayLike, "B 127 127 3"], train: bool = False, backbone_bn=None):
        """Template features [B, 7, 7, adjust] of exemplar crops."""
        return self.features(z, train, backbone_bn)[1]

    def track(
        self, zf, x: Float[ArrayLike, "B X X 3"], train: bool = False, backbone_bn=None
    ) -> Track:
        """RPN scores and boxes, the mask branch's correlation and the refine skips of search
        crops `x` against template features `zf` (official `track_mask` without the mask head,
        which the refined mask replaces)."""
        skips, xf = self.features(x, train, backbone_bn)
        return Track(
            cls=self.cls(zf, xf, train),
            loc=self.loc(zf, xf, train),
            corr=self.mask.corr(zf, xf, train),
            skips=skips,
        )

    def mask_head(self, corr, train: bool = False) -> Float[Array, "B s s M"]:
        """The coarse mask head (mask_size**2 channels per position; the "base" model's mask)."""
        return self.mask.head(corr, train)

    def refine(
        self, skips, corr, pos: Int[ArrayLike, "B 2"], padded: bool = True
    ) -> Float[Array, "B 127 127"]:
        """Refined mask logits at score-map position `pos` (row, col) of each crop; `padded`:
        the tracker's windows, else the training's (`refine_windows`)."""
        feature = jax.vmap(lambda c, rc: c[rc[0], rc[1]])(corr, jnp.asarray(pos, jnp.int32))
        return self.refine_module(refine_windows(skips, pos, padded), feature)

    def __call__(self, z, x, train: bool = False):
        """Every output at once (creates all variables): (Track, mask head, refined mask at the
        centre of the score map)."""
        out = self.track(self.template(z, train), x, train)
        centre = out.cls.shape[1] // 2
        pos = jnp.full((x.shape[0], 2), centre, jnp.int32)
        return out, self.mask_head(out.corr, train), self.refine(out.skips, out.corr, pos)
