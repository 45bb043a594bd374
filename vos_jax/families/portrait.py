"""Google's mobile real-time video segmentation as a family (SPEC section 4; MediaPipe's hair
graph): each object's mask comes from the frame and that object's previous mask, MaskTrack's
recurrence, with the model of models/portrait.py.

Inference, per object slot (all slots of all videos in one batch), as MediaPipe's hair graph
(hair_segmentation_mobile_gpu.pbtxt, TfLiteTensorsToSegmentationCalculator): the frame and the
slot's previous mask, stretched to the model's input size (512x512 for the published model),
RGB and mask in 0..1; softmax channel 1 is the new mask, mixed with the previous one where the
model is uncertain (`blend_with_previous`, `combine_with_previous_ratio` 0.9), kept as 8 bits and
fed back as the next frame's prior; stretched back to the frame. Labels: the most probable object
above 0.5, else background. A model without the prior input (`in_channels` 3) ignores it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vos_jax.convert import Converter
from vos_jax.convert import mediapipe as official
from vos_jax.data.pipeline import SampleConfig
from vos_jax.dtypes import accumulation_dtype
from vos_jax.families.options import build, require
from vos_jax.families.propagator import Prediction, Propagator
from vos_jax.models.portrait import VARIANTS as VARIANTS
from vos_jax.models.portrait import PortraitModel
from vos_jax.models.portrait import build as build_model

MODEL = build_model  # "arch": hair (HairNet, RGB + previous mask) or selfie (SelfieNet, RGB)
SAMPLING = "static"
CITATION = (  # the paper a model card asks its users to cite
    "V. Bazarevsky, A. Tkachenka: Mobile Real-time Video Segmentation. Google AI Blog, "
    "2018; F. Perazzi, A. Khoreva et al.: Learning Video Object Segmentation from Static "
    "Images. CVPR 2017."
)
BACKGROUND_SCORE = 0.5  # a pixel takes the most probable object above this, else background


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    pass


@dataclasses.dataclass(frozen=True)
class LossOptions:
    boundary_weight: float = field(
        default=4.0, metadata={"help": "extra cross-entropy weight within boundary_radius of edges"}
    )
    boundary_radius: int = field(default=3, metadata={"help": "pixels, the boundary band"})

    def __post_init__(self):
        require(self.boundary_weight >= 0, "boundary_weight", "a float >= 0", self.boundary_weight)
        require(
            self.boundary_radius >= 1, "boundary_radius", "an integer >= 1", self.boundary_radius
        )


@dataclasses.dataclass(frozen=True)
class InferenceOptions:
    max_objects: int = field(default=1, metadata={"help": "object slots (static shape)"})
    input_height: int = field(default=512, metadata={"help": "the model's input height"})
    input_width: int = field(default=512, metadata={"help": "the model's input width"})
    combine_with_previous_ratio: float = field(
        default=0.9, metadata={"help": "MediaPipe's temporal blend (0: none)"}
    )

    def __post_init__(self):
        require(self.max_objects >= 1, "max_objects", "an integer >= 1", self.max_objects)
        for key in ("input_height", "input_width"):
            value = getattr(self, key)
            require(value >= 32 and value % 32 == 0, key, "a multiple of 32", value)
        ratio = self.combine_with_previous_ratio
        require(0 <= ratio <= 1, "combine_with_previous_ratio", "a float in [0, 1]", ratio)


@dataclasses.dataclass(frozen=True)
class ImportOptions:
    tflite: str = field(default="", metadata={"help": "a hair or selfie segmentation .tflite"})
    wheel: str = field(default="", metadata={"help": "or a mediapipe wheel holding it"})
    model: str = field(
        default="hair", metadata={"help": "with --wheel: hair, selfie or selfie_landscape"}
    )


converter = Converter(official.convert, ImportOptions, official.CONVENTIONS, name="mediapipe")


def init_variables(model: PortraitModel, key, sample: dict) -> dict:
    frames = jnp.asarray(sample["frames"])
    shape = (1, *frames.shape[-3:-1], model.in_channels)
    return model.init(key, jnp.zeros(shape, jnp.float32))


def training_sample(sample: SampleConfig, loss: LossOptions) -> SampleConfig:
    """The loss takes single annotated frames with a simulated previous mask (MaskTrack): static
    samples with `data.prior` (the configs set both)."""
    require(sample.prior, "prior", "config.data.prior=True (simulated previous masks)", False)
    return sample


def model_input(frames, prior, in_channels: int, dtype=jnp.float32):
    """frames [N, H, W, 3] uint8 or 0..255 floats, prior [N, H, W] in 0..1 -> [N, H, W, C] in
    0..1 (the prior only where the model takes one)."""
    rgb = jnp.asarray(frames, dtype) / 255.0
    if in_channels == 3:
        return rgb
    return jnp.concatenate([rgb, jnp.asarray(prior, dtype)[..., None]], axis=-1)


def log_probs(logits):
    """(log P(background), log P(foreground)) [N, H, W] of the model's logits: a softmax over
    two channels (the hair graph) or a sigmoid of one (the selfie graph), in float32 at least."""
    logits = jnp.asarray(logits, accumulation_dtype(logits.dtype))
    if logits.shape[-1] == 1:
        return jax.nn.log_sigmoid(-logits[..., 0]), jax.nn.log_sigmoid(logits[..., 0])
    logp = jax.nn.log_softmax(logits, axis=-1)
    return logp[..., 0], logp[..., 1]


def blend_with_previous(new, previous, ratio: float):
    """MediaPipe's temporal smoothing: where the new mask p is uncertain (binary entropy), mix in
    the previous one: a = clamp(1 - H(p)), a = 1 - (1 - a)^2, p' = ratio (a p + (1 - a) prev)
    + (1 - ratio) p (TfLiteTensorsToSegmentationCalculator, eps 0.001 in the logs)."""
    eps = 0.001
    entropy = -(new * jnp.log(new + eps) + (1 - new) * jnp.log(1 - new + eps)) / jnp.log(2.0)
    alpha = jnp.clip(1.0 - entropy, 0.0, 1.0)
    alpha = alpha * (2.0 - alpha)
    mixed = new * alpha + previous * (1.0 - alpha)
    return mixed * ratio + (1.0 - ratio) * new


def _boundary_band(target, radius: int):
    """Pixels within `radius` of a foreground / background edge of target [N, H, W] (0 / 1)."""
    window = (1, 2 * radius + 1, 2 * radius + 1)
    grow = jax.lax.reduce_window(target, -jnp.inf, jax.lax.max, window, (1, 1, 1), "SAME")
    shrink = jax.lax.reduce_window(target, jnp.inf, jax.lax.min, window, (1, 1, 1), "SAME")
    return (grow != shrink).astype(target.dtype)


def loss(model: PortraitModel, params, batch_stats, batch: dict, key, step, **options):
    """Every valid object of every sample's first frame: softmax cross-entropy of its mask given
    its simulated prior, weighted 1 + boundary_weight within boundary_radius of its edges (the
    blog's emphasis on sharp boundaries: most of the error of a coarse mask lies there);
    void pixels (255) excluded. -> (mean over weighted pixels, (batch_stats, metrics))."""
    o = build(LossOptions, options)
    acc = accumulation_dtype(model.dtype)  # float32, float64 in the equivalence checks
    frames = batch["frames"][:, 0]  # [B, H, W, 3]
    masks = batch["masks"][:, 0].astype(jnp.int32)
    prior = batch["prior"][:, 0].astype(jnp.int32)
    valid = batch["object_valid"][:, 1:].astype(bool)  # [B, O]
    slots = valid.shape[1]
    ids = jnp.arange(1, slots + 1)[None, :, None, None]
    target = (masks[:, None] == ids).astype(acc)  # [B, O, H, W]
    given = (prior[:, None] == ids).astype(acc)
    n = frames.shape[0] * slots
    x = model_input(jnp.repeat(frames, slots, axis=0), given.reshape(n, *given.shape[2:]),
                    model.in_channels, acc)  # fmt: skip
    logits = model.apply({"params": params}, x).astype(acc)  # [B O, H, W, 2]
    log_back, log_fore = log_probs(logits)
    target = target.reshape(n, *target.shape[2:])
    nll = -(target * log_fore + (1 - target) * log_back)
    known = jnp.repeat(masks != 255, slots, axis=0) & valid.reshape(n, 1, 1)
    weight = (1.0 + o.boundary_weight * _boundary_band(target, o.boundary_radius)) * known
    total = jnp.sum(nll * weight) / jnp.maximum(jnp.sum(weight), 1.0)
    predicted = log_fore > log_back
    inter = jnp.sum((predicted & (target > 0)) * known, axis=(1, 2))
    union = jnp.sum((predicted | (target > 0)) * known, axis=(1, 2))
    iou = jnp.sum(jnp.where(union > 0, inter / jnp.maximum(union, 1), 1.0) * valid.reshape(n))
    metrics = {"loss": total, "iou": iou / jnp.maximum(jnp.sum(valid), 1)}
    return total, (batch_stats, metrics)


def resize(x, shape):
    """[..., H, W] -> [..., *shape], bilinear with half-pixel centres (TFLite's RESIZE_BILINEAR,
    OpenCV's resize when enlarging)."""
    return jax.image.resize(x, (*x.shape[:-2], *shape), "bilinear")


def mediapipe_step(model: PortraitModel, variables, frames, previous, blend, ratio: float):
    """One step of MediaPipe's hair graph for every object slot of B frames: frames
    [B, H, W, 3] (0..255), each slot's previous mask [B, O, h, w] (0..1, at the model's size),
    `blend` [B, O] bool: whether there is a previous mask to blend with (MediaPipe's first frame
    has none) -> the new masks [B, O, h, w] in 0..1, 8-bit as MediaPipe keeps them, which are
    also the next priors. Each frame is resized once; a model without the prior input runs once
    per frame, not per slot."""
    slots, size = previous.shape[1], previous.shape[2:]
    small = jnp.moveaxis(resize(jnp.moveaxis(jnp.asarray(frames, jnp.float32), -1, 1), size), 1, -1)
    if model.in_channels == 3:  # the prior does not enter: the same mask for every slot
        fresh = jnp.exp(log_probs(model.apply(variables, model_input(small, None, 3)))[1])
        fresh = jnp.broadcast_to(fresh[:, None], previous.shape)
    else:
        x = model_input(jnp.repeat(small, slots, axis=0), previous.reshape(-1, *size), 4)
        fresh = jnp.exp(log_probs(model.apply(variables, x))[1]).reshape(previous.shape)
    mixed = blend_with_previous(fresh, previous, ratio)
    mask = jnp.where(jnp.asarray(blend)[..., None, None], mixed, fresh)
    return jnp.floor(mask * 255.0) / 255.0


class PortraitState(NamedTuple):
    previous: jax.Array  # [B, O, h, w] each slot's last mask at the model's size, 0..1
    valid: jax.Array  # [B, O + 1]


def propagator(model: PortraitModel, variables, **options) -> Propagator:
    o = build(InferenceOptions, options)
    variables = jax.tree.map(jnp.asarray, variables)  # host copies (validation) to device
    size = (o.input_height, o.input_width)
    slots = o.max_objects
    ids = jnp.arange(1, slots + 1)[None, :, None, None]

    def given(masks, new):
        """[B, O, h, w] the masks handed over in this frame, at the model's size."""
        return resize((masks[:, None] == ids).astype(jnp.float32), size) * new[:, 1:, None, None]

    def init(frames, masks, new):
        return PortraitState(given(masks, new), new.at[:, 0].set(True))

    def step(state: PortraitState, frames, masks, new):
        batch, height, width = frames.shape[:3]
        blend = jnp.ones((batch, slots), bool)
        ratio = o.combine_with_previous_ratio
        mask = mediapipe_step(model, variables, frames, state.previous, blend, ratio)
        arrived = new[:, 1:, None, None]
        valid = state.valid | new
        mask = jnp.where(arrived, given(masks, new), mask) * valid[:, 1:, None, None]
        probs = jnp.where(arrived, masks[:, None] == ids, resize(mask, (height, width)))
        probs = jnp.where(valid[:, 1:, None, None], probs, -1.0)
        background = jnp.full((batch, 1, height, width), BACKGROUND_SCORE)
        probs = jnp.moveaxis(jnp.concatenate([background, probs], axis=1), 1, -1)
        return PortraitState(mask, valid), Prediction(probs)

    return Propagator(jax.jit(init), jax.jit(step), slots)
