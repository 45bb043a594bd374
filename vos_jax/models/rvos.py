"""RVOS (Ventura et al., "RVOS: End-to-End Recurrent Network for Video Object Segmentation",
CVPR 2019) as a Flax Linen module exposing its stages (SPEC section 2).

The model holds no video state: `features` encodes frames, `decode` segments every object slot of
one frame given the previous frame's state, which the caller carries (families/rvos.py scans it
over frames, for inference and training alike):

    model = Rvos.variant("tiny", one_shot=True)
    variables = model.init(key, frames, num_objects=O)               # [B, H, W, 3] uint8
    skips = model.apply(variables, frames, method=Rvos.features)   # 4 maps, strides 32 .. 4
    state = initial_state(skips, O, model.hidden)                   # zeros: the first frame
    logits, state = model.apply(variables, skips, state, prev_probs, (H, W), method=Rvos.decode)

Inside a frame the object slots are decoded one after another (spatial recurrence, an `nn.scan`
over the slot axis carrying the 4 cells' (h, c)); each slot also takes its own hidden states of the
previous frame (temporal recurrence). Slots are a static axis O (no background slot); the caller
masks invalid ones. The per-slot state is slot-major, [O, B, h, w, K], the scan's layout.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, UInt8

from vos_jax.dtypes import accumulation_dtype
from vos_jax.models.backbones import make_backbone
from vos_jax.models.feelvos import IMAGENET_MEAN, IMAGENET_STD
from vos_jax.models.layers import (
    BN_EPSILON,
    BN_MOMENTUM,
    ConvLSTMCell,
    conv_padding,
    max_pool_ceil,
    resize_align_corners,
)

Dtype = Any
TAPS = ("layer4", "layer3", "layer2", "layer1")  # encoder taps, coarse to fine: strides 32 .. 4
# Skip projections and ConvLSTM hidden widths as fractions of `hidden` (128 in the paper):
# skips [128, 128, 64, 32], cells [128, 64, 32, 16] (official `FeatureExtractor`, `RSIS`).
SKIP_FRACTIONS = (1, 1, 2, 4)
CELL_FRACTIONS = (1, 2, 4, 8)

VARIANTS: dict[str, dict[str, Any]] = {
    "paper": dict(backbone="resnet101"),  # the official default (ResNet-101, hidden 128)
    "resnet50": dict(backbone="resnet50"),
    "resnet34": dict(backbone="resnet34"),
    # Tests and demos: one bottleneck block per stage at stem width 8, hidden 16.
    "tiny": dict(
        backbone="resnet50", backbone_width=8, backbone_stage_sizes=(1, 1, 1, 1), hidden=16
    ),
}

# The 4 levels, coarse to fine (strides 32, 16, 8, 4): each its own size, hence 4-tuples.
Skips = tuple[
    Float[Array, "B h0 w0 C0"],
    Float[Array, "B h1 w1 C1"],
    Float[Array, "B h2 w2 C2"],
    Float[Array, "B h3 w3 C3"],
]
SkipShapes = tuple[  # Skips, or their shapes only (`jax.eval_shape` of `Rvos.features`)
    Float[Array | jax.ShapeDtypeStruct, "B h0 w0 C0"],
    Float[Array | jax.ShapeDtypeStruct, "B h1 w1 C1"],
    Float[Array | jax.ShapeDtypeStruct, "B h2 w2 C2"],
    Float[Array | jax.ShapeDtypeStruct, "B h3 w3 C3"],
]
State = tuple[  # each slot's 4 cell hidden states of the last frame, at the skips' sizes
    Float[Array, "O B h0 w0 K0"],
    Float[Array, "O B h1 w1 K1"],
    Float[Array, "O B h2 w2 K2"],
    Float[Array, "O B h3 w3 K3"],
]
MaskPyramid = tuple[
    Float[Array, "O B h0 w0 1"],
    Float[Array, "O B h1 w1 1"],
    Float[Array, "O B h2 w2 1"],
    Float[Array, "O B h3 w3 1"],
]


class RvosEncoder(nn.Module):
    """ResNet taps after layer4..layer1, each through a 3x3 conv (with bias) + BatchNorm, no
    activation (official `FeatureExtractor`; parameter names sk5..sk2, bn5..bn2 as there)."""

    backbone: str = "resnet101"
    backbone_width: int | None = None
    backbone_stage_sizes: tuple[int, ...] | None = None
    hidden: int = 128
    dtype: Dtype = jnp.float32

    def setup(self):
        self.base = make_backbone(
            self.backbone,
            width=self.backbone_width,
            stage_sizes=self.backbone_stage_sizes,
            dtype=self.dtype,
        )
        names = (5, 4, 3, 2)
        widths = [self.hidden // f for f in SKIP_FRACTIONS]
        self.skip_convs = [
            nn.Conv(c, (3, 3), padding=conv_padding(3), dtype=self.dtype, name=f"sk{n}")
            for n, c in zip(names, widths, strict=True)
        ]
        self.skip_norms = [
            nn.BatchNorm(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=self.dtype, name=f"bn{n}")
            for n in names
        ]

    def __call__(self, x: Float[ArrayLike, "B H W 3"], train: bool = False) -> Skips:
        taps = self.base(x, train)
        return tuple(
            norm(conv(taps[tap]), use_running_average=not train)
            for tap, conv, norm in zip(TAPS, self.skip_convs, self.skip_norms, strict=True)
        )


class RvosSlotDecoder(nn.Module):
    """One object slot of one frame (official `RSIS` / `RSISMask`): 4 ConvLSTM cells, coarse to
    fine; between cells h is upsampled (aligned corners) to the next skip's size and concatenated
    with it; after the last, upsampled x2 and a 3x3 conv gives the slot's logit at stride 2.
    Called by `nn.scan` over slots: (spatial carry, this slot's inputs, shared skips)."""

    hidden: int = 128
    one_shot: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, spatial, slot_inputs, skips):
        temporal, masks = slot_inputs
        x = skips[0]
        new_spatial = []
        for i, fraction in enumerate(CELL_FRACTIONS):
            mask = masks[i] if self.one_shot else None
            cell = ConvLSTMCell(self.hidden // fraction, dtype=self.dtype, name=f"cell{i}")
            h, c = cell(x, mask, spatial[i], temporal[i])
            new_spatial.append((h, c))
            if i + 1 < len(skips):
                up = resize_align_corners(h, skips[i + 1].shape[1:3])
                x = jnp.concatenate([up, skips[i + 1].astype(up.dtype)], axis=-1)
            else:
                x = resize_align_corners(h, (2 * h.shape[1], 2 * h.shape[2]))
        acc = accumulation_dtype(self.dtype)
        logit = nn.Conv(1, (3, 3), padding=conv_padding(3), dtype=acc, name="conv_out")(
            x.astype(acc)
        )
        hiddens = tuple(h for h, _ in new_spatial)
        return tuple(new_spatial), (logit[..., 0], hiddens)


def mask_pyramid(probs: Float[Array, "B H W O"]) -> MaskPyramid:
    """Each slot's previous mask at the 4 cells' scales, coarse first: 2x2 max-pools with ceil mode,
    once to 1/2 and then once per scale, 1/4 .. 1/32 (official `test_prev_mask`)."""
    x = max_pool_ceil(probs)
    levels = []
    for _ in CELL_FRACTIONS:
        x = max_pool_ceil(x)
        levels.append(jnp.moveaxis(x, -1, 0)[..., None])
    return tuple(reversed(levels))


def initial_state(skips: SkipShapes, num_slots: int, hidden: int) -> State:
    """Zero temporal state (the first frame of a video) for a model of width `hidden`, shaped as
    `decode` returns it: [O, B, h_i, w_i, hidden / CELL_FRACTIONS[i]] at the skips' sizes."""
    return tuple(
        jnp.zeros((num_slots, *s.shape[:3], hidden // f), s.dtype)
        for s, f in zip(skips, CELL_FRACTIONS, strict=True)
    )


class Rvos(nn.Module):
    """RVOS: ResNet encoder with projected skips, ConvLSTM decoder recurrent over object slots
    (inside `decode`) and over frames (the caller's state). `one_shot`: the previous mask of each
    slot enters every cell (semi-supervised); else zero-shot (unsupervised)."""

    backbone: str = "resnet101"
    backbone_width: int | None = None
    backbone_stage_sizes: tuple[int, ...] | None = None
    hidden: int = 128
    one_shot: bool = True
    pixel_mean: tuple[float, float, float] = IMAGENET_MEAN
    pixel_std: tuple[float, float, float] = IMAGENET_STD
    dtype: Dtype = jnp.float32

    @classmethod
    def variant(cls, name: str, **overrides: Any) -> Rvos:
        return cls(**{**VARIANTS[name], **overrides})

    def setup(self):
        self.encoder = RvosEncoder(
            self.backbone, self.backbone_width, self.backbone_stage_sizes, self.hidden, self.dtype
        )
        scan = nn.scan(
            RvosSlotDecoder,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=(0, nn.broadcast),
        )
        self.decoder = scan(self.hidden, self.one_shot, self.dtype)

    def features(
        self, frames: Float[ArrayLike, "B H W 3"] | UInt8[ArrayLike, "B H W 3"], train: bool = False
    ) -> Skips:
        """Frames (uint8, or float in [0, 1]) -> the 4 projected skips, coarse to fine:
        [B, ceil(H / s), ceil(W / s), C] for s = 32, 16, 8, 4."""
        x = frames.astype(accumulation_dtype(self.dtype))
        if frames.dtype == jnp.uint8:
            x = x / 255.0
        x = (x - jnp.asarray(self.pixel_mean)) / jnp.asarray(self.pixel_std)
        return self.encoder(x.astype(self.dtype), train)

    def decode(
        self,
        skips: Skips,
        state: State,
        previous_probs: Float[Array, "B H W O"] | None,
        size: tuple[int, int],
    ) -> tuple[Float[Array, "B H W O"], State]:
        """Segment one frame: every slot in order, each after the previous one (spatial carry,
        zero for the first slot) with its own hidden states of the previous frame (`state`).
        `previous_probs` (one-shot only): each slot's mask of the previous frame (the given masks
        on the first frame, then the model's own probabilities). -> logits at `size`, new state."""
        spatial = tuple(
            (jnp.zeros_like(s[0]), jnp.zeros(s.shape[1:], accumulation_dtype(s.dtype)))
            for s in state
        )
        masks = None
        if self.one_shot:
            if previous_probs is None:
                raise ValueError("a one-shot RVOS needs previous_probs (the given first masks)")
            masks = mask_pyramid(previous_probs.astype(skips[0].dtype))
        _, (logits, hiddens) = self.decoder(spatial, (state, masks), skips)
        # [O, B, H/2, W/2] -> one batched upsampling of every slot to the input size.
        half = jnp.moveaxis(logits, 0, -1)
        full = resize_align_corners(half, size)
        return full.astype(accumulation_dtype(full.dtype)), hiddens

    def __call__(
        self,
        frames: Float[ArrayLike, "B H W 3"] | UInt8[ArrayLike, "B H W 3"],
        num_objects: int = 1,
    ) -> Float[Array, "B H W O"]:
        """`features` + `decode` of one first frame with empty masks, so that `init` creates
        every variable: `model.init(key, frames, num_objects=O)` (O slots;
        parameters do not depend on O)."""
        skips = self.features(frames)
        state = initial_state(skips, num_objects, self.hidden)
        empty = jnp.zeros((*frames.shape[:3], num_objects), jnp.float32)
        logits, _ = self.decode(skips, state, empty if self.one_shot else None, frames.shape[1:3])
        return logits
