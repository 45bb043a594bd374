"""FEELVOS (Voigtlaender et al., "FEELVOS: Fast End-to-End Embedding Learning for Video Object
Segmentation", CVPR 2019) as a Flax Linen module exposing its stages.

The model holds no video state and does no matching: the inference engine and the training
step call `features` per frame, match embeddings with `vos_jax.ops.matching` (global against the
first frame, local against the previous one), then call `segment`:

    model = Feelvos.variant("tiny")                    # or Feelvos(**VARIANTS["paper"])
    variables = model.init(key, frames, num_objects=O)  # params + batch_stats; any O works later
    feats, emb = model.apply(variables, frames, method=Feelvos.features)
    logits = model.apply(variables, feats, global_map, local_map, prev_probs, object_valid,
                         method=Feelvos.segment)
    probs = probabilities(logits, object_valid)       # softmax over objects, float32
    labels = predict_labels(logits, object_valid, frames.shape[1:3])
    # training: train=True and mutable=["batch_stats"] in apply.

Evaluate at output stride 8 with the same variables: `model.clone(output_stride=8)` (dilation
changes no parameter shape). Frames of size H x W give stride-4 maps of h = ceil(H / 4),
w = ceil(W / 4) (symmetric padding, no input padding); feature j is centred on pixel 4 j, which
`upsample` respects (align_corners-style; DeepLab/FEELVOS use H = 4 k + 1 crops such as 465).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, Integer, UInt8

from vos_jax.dtypes import accumulation_dtype
from vos_jax.models.backbones import make_backbone
from vos_jax.models.deeplab import DeepLabV3Plus
from vos_jax.models.layers import (
    DepthwiseConv,
    SeparableConv,
    conv_general_dilated,
    upsample_aligned,
)

Dtype = Any
NEG_LOGIT = -1e9  # logit of padded objects: exp(-1e9 - x) == 0 in float32, no inf arithmetic
FEATURE_STRIDE = 4
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

VARIANTS: dict[str, dict[str, Any]] = {
    # DeepLabv3+ on ResNet-101 (substitute for the paper's Xception-65, SPEC 1).
    "paper": dict(backbone="resnet101"),  # 46,026,667 parameters
    # DeepLabv3+ on MobileNetV2 (without its final 1x1 conv, as DeepLab): 3,058,219 parameters.
    "mobile": dict(backbone="mobilenet_v2"),
    # Tests and demos: one bottleneck block per stage at stem width 8: 193,855 parameters.
    "tiny": dict(
        backbone="resnet50",
        backbone_width=8,
        backbone_stage_sizes=(1, 1, 1, 1),
        aspp_channels=32,
        decoder_channels=32,
        low_level_channels=16,
        embedding_dim=16,
        head_channels=32,
        head_layers=2,
    ),
}


def identity_init(stddev: float = 0.03):
    """FEELVOS's `conv2d_identity_initializer` (embedding_utils.py:867-919): weights[c, c, i, i]
    = 1 at the centre tap for i < min(in, out), plus truncated normal noise of `stddev` (0.03).
    As in the official code a depthwise kernel ([k, k, 1, C] here, TF's [k, k, C, 1]) has
    min(in, out) = 1, so only channel 0 gets the identity; its other channels start as noise."""

    def init(key, shape, dtype=jnp.float32):
        kh, kw, cin, cout = shape
        eye = np.zeros(shape, np.float32)
        idx = np.arange(min(cin, cout))
        eye[kh // 2, kw // 2, idx, idx] = 1.0
        noise = stddev * jax.random.truncated_normal(key, -2.0, 2.0, shape, jnp.float32)
        return (jnp.asarray(eye) + noise).astype(dtype)

    return init


class EmbeddingHead(nn.Module):
    """One 3x3 depthwise-separable conv to D (FEELVOS Sec. 3.1; embedding_utils.py:617-620,
    922-962), both convs initialised by `identity_init`; each has a bias and a ReLU, no
    BatchNorm (TF-slim defaults there), so embeddings are non-negative."""

    embedding_dim: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Float[Array, "B h w C"]) -> Float[Array, "B h w D"]:
        x = DepthwiseConv(3, dtype=self.dtype, kernel_init=identity_init(), name="depthwise")(x)
        x = nn.relu(x)
        x = nn.Conv(
            self.embedding_dim,
            (1, 1),
            dtype=self.dtype,
            kernel_init=identity_init(),
            conv_general_dilated=conv_general_dilated,
            name="pointwise",
        )(x)
        return nn.relu(x)


# The dynamic head's initialisers (truncated normal, official stddevs): DeepLab's
# `split_separable_conv2d` (core/utils.py:83-99) and `get_branch_logits` (model.py:743-763).
HEAD_DEPTHWISE_INIT = nn.initializers.truncated_normal(0.33)
HEAD_POINTWISE_INIT = nn.initializers.truncated_normal(0.06)
HEAD_LOGIT_INIT = nn.initializers.truncated_normal(0.01)


class ObjectHead(nn.Module):
    """The dynamic segmentation head (FEELVOS Sec. 3.3, Fig. 2), one weight set for every object,
    as the official embedding_utils.py:397-423, 717-771: input concat(features, global map,
    previous-frame mask, local map) of C + 3 channels in that order, `layers` kxk
    depthwise-separable convs, each conv with a bias and a ReLU and no BatchNorm, then a 1x1 conv
    to one logit. It runs on N = B * O (example, object) pairs at once."""

    channels: int = 256
    layers: int = 4
    kernel: int = 7
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self, features: Float[Array, "N h w C"], maps: Float[Array, "N h w 3"]
    ) -> Float[Array, "N h w"]:
        x = jnp.concatenate([features, maps.astype(features.dtype)], axis=-1)
        for i in range(self.layers):
            conv = SeparableConv(
                self.channels,
                self.kernel,
                use_bn=False,
                dtype=self.dtype,
                depthwise_init=HEAD_DEPTHWISE_INIT,
                pointwise_init=HEAD_POINTWISE_INIT,
                name=f"conv{i}",
            )
            x = conv(x, False)
        acc = accumulation_dtype(self.dtype)
        logit = nn.Conv(
            1,
            (1, 1),
            dtype=acc,
            kernel_init=HEAD_LOGIT_INIT,
            conv_general_dilated=conv_general_dilated,
            name="logit",
        )(x.astype(acc))
        return logit[..., 0]


class Feelvos(nn.Module):
    """FEELVOS: DeepLabv3+ features and embeddings at stride 4, dynamic segmentation head.

    Fields are plain constructor kwargs (`VARIANTS`); `backbone` is a name for
    `backbones.make_backbone` with optional `backbone_width` / `backbone_stage_sizes`.
    """

    backbone: str = "resnet101"
    backbone_width: float | None = None
    backbone_stage_sizes: tuple[int, ...] | None = None
    output_stride: int = 16  # 16 in training, 8 at evaluation (FEELVOS code)
    # BatchNorm statistics of backbone, ASPP and decoder: updated in training only when True
    # (official `fine_tune_batch_norm=False`, train.py:143: frozen, scale and bias still learn).
    fine_tune_batch_norm: bool = False
    aspp_channels: int = 256
    atrous_rates: tuple[int, ...] = (6, 12, 18)
    decoder_channels: int = 256
    low_level_channels: int = 48
    separable: bool = True
    embedding_dim: int = 100
    head_channels: int = 256
    head_layers: int = 4
    head_kernel: int = 7
    pixel_mean: tuple[float, float, float] = IMAGENET_MEAN
    pixel_std: tuple[float, float, float] = IMAGENET_STD
    dtype: Dtype = jnp.float32

    @classmethod
    def variant(cls, name: str, **overrides: Any) -> Feelvos:
        """`Feelvos.variant("paper", output_stride=8, dtype=jnp.bfloat16)`."""
        return cls(**{**VARIANTS[name], **overrides})

    def setup(self):
        self.encoder = make_backbone(
            self.backbone,
            output_stride=self.output_stride,
            width=self.backbone_width,
            stage_sizes=self.backbone_stage_sizes,
            dtype=self.dtype,
        )
        self.decoder = DeepLabV3Plus(
            self.aspp_channels,
            self.decoder_channels,
            self.low_level_channels,
            self.atrous_rates,
            self.output_stride,
            low_level_stride=FEATURE_STRIDE,
            separable=self.separable,
            dtype=self.dtype,
        )
        self.embedding = EmbeddingHead(self.embedding_dim, dtype=self.dtype)

    def _normalise(self, frames: ArrayLike) -> Array:
        x = frames.astype(accumulation_dtype(self.dtype))
        if frames.dtype == jnp.uint8:
            x = x / 255.0
        x = (x - jnp.asarray(self.pixel_mean)) / jnp.asarray(self.pixel_std)
        return x.astype(self.dtype)

    def features(
        self,
        frames: Float[ArrayLike, "*B H W 3"] | UInt8[ArrayLike, "*B H W 3"],
        train: bool = False,
    ) -> tuple[Float[Array, "*B h w C"], Float[Array, "*B h w D"]]:
        """Frames (float in [0, 1] or uint8, any leading dims, e.g. [B, T]) -> stride-4 decoder
        features (compute dtype) and embeddings (float32), h = ceil(H / 4), w = ceil(W / 4)."""
        lead, (height, width) = frames.shape[:-3], frames.shape[-3:-1]
        x = self._normalise(frames.reshape((-1, height, width, 3)))
        norm_train = train and self.fine_tune_batch_norm
        taps = self.encoder(x, norm_train)
        feats = self.decoder(taps["layer4"], taps["layer1"], norm_train)
        emb = self.embedding(feats).astype(accumulation_dtype(self.dtype))
        return feats.reshape(lead + feats.shape[1:]), emb.reshape(lead + emb.shape[1:])

    @nn.compact
    def segment(
        self,
        features: Float[Array, "B h w C"],
        global_map: Float[Array, "B h w O"],
        local_map: Float[Array, "B h w O"],
        previous_probs: Float[Array, "B h w O"],
        object_valid: Bool[ArrayLike, "B O"],
        train: bool = False,
    ) -> Float[Array, "B h w O"]:
        """Per-object logits from the dynamic segmentation head, weights shared over objects
        (one head over all (example, object) pairs; parameters do not depend on O). Padded
        objects get `NEG_LOGIT`. `previous_probs`: the previous frame's mask per object (a
        one-hot of its labels, as the official code feeds, or probabilities)."""
        del train  # the head has no BatchNorm or dropout
        batch, height, width, num_objects = global_map.shape
        # (example, object) pairs flattened example-major: the pair axis keeps the batch axis's
        # sharding over devices (object-major, as nn.vmap would merge them, makes XLA gather the
        # whole batch on every device). Official channel order: global, previous, local.
        maps = jnp.stack([global_map, previous_probs, local_map], axis=-1)  # [B, h, w, O, 3]
        maps = jnp.moveaxis(maps, 3, 1).reshape(batch * num_objects, height, width, 3)
        pairs = jnp.repeat(features, num_objects, axis=0)  # [B * O, h, w, C]
        head = ObjectHead(
            self.head_channels, self.head_layers, self.head_kernel, self.dtype, name="head"
        )
        logits = head(pairs, maps)
        logits = jnp.moveaxis(logits.reshape(batch, num_objects, height, width), 1, -1)
        logits = logits.astype(accumulation_dtype(logits.dtype))
        return jnp.where(object_valid[:, None, None, :], logits, NEG_LOGIT)

    def __call__(
        self,
        frames: Float[ArrayLike, "B H W 3"] | UInt8[ArrayLike, "B H W 3"],
        num_objects: int = 1,
        train: bool = False,
    ) -> tuple[Float[Array, "B h w O"], Float[Array, "B h w D"]]:
        """Runs `features` and `segment` with zero maps, so that `init` creates every variable:
        `model.init(key, frames, num_objects=O)`. Returns (logits, embeddings)."""
        feats, emb = self.features(frames, train)
        zeros = jnp.zeros(feats.shape[:3] + (num_objects,), accumulation_dtype(self.dtype))
        valid = jnp.ones((feats.shape[0], num_objects), bool)
        return self.segment(feats, zeros, zeros, zeros, valid, train), emb


def probabilities(
    logits: Float[Array, "B h w O"], object_valid: Bool[ArrayLike, "B O"]
) -> Float[Array, "B h w O"]:
    """Softmax over objects in float32 (at least); padded objects get probability 0."""
    logits = logits.astype(accumulation_dtype(logits.dtype))
    logits = jnp.where(object_valid[:, None, None, :], logits, NEG_LOGIT)
    return jax.nn.softmax(logits, axis=-1)


def to_feature_grid(ids: Integer[ArrayLike, "*B H W"]) -> Integer[ArrayLike, "*B h w"]:
    """Full-resolution maps (object ids) -> the stride-4 grid: sample j is pixel 4j, where
    `features` centres its outputs (h = ceil(H / 4), like the features)."""
    return ids[..., ::FEATURE_STRIDE, ::FEATURE_STRIDE]


def upsample(x: Float[Array, "B h w O"], size: tuple[int, int]) -> Float[Array, "B H W O"]:
    """Stride-4 maps (probabilities, logits) to full resolution, bilinear and stride-aligned."""
    return upsample_aligned(x, size, FEATURE_STRIDE)


def predict_labels(
    logits: Float[Array, "B h w O"], object_valid: Bool[ArrayLike, "B O"], size: tuple[int, int]
) -> Int[Array, "B H W"]:
    """FEELVOS inference output: softmax over objects -> upsample -> argmax (int32 object ids)."""
    probs = upsample(probabilities(logits, object_valid), size)
    return jnp.argmax(probs, axis=-1).astype(jnp.int32)
