"""A test-only family: a two-layer convolutional tracker (frame + each slot's previous mask ->
the slot's logit, softmax over slots), written only against the `Family` protocol. Registered by
tests (`FAMILIES["toy"]`), it trains, checkpoints, resumes and segments through the generic
layers: the proof that a family is one module, a model and configs."""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from vos_jax.data.pipeline import SampleConfig
from vos_jax.families.options import build, require
from vos_jax.families.propagator import Prediction, Propagator


class Toy(nn.Module):
    features: int = 8
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, frames, previous):
        """frames [B, H, W, 3] uint8, previous [B, H, W, O] -> logits [B, H, W, O]."""
        batch, height, width, slots = previous.shape
        x = nn.relu(nn.Conv(self.features, (3, 3), name="conv1")(frames / 255.0))
        per_slot = jnp.concatenate(
            [jnp.repeat(x[:, None], slots, 1), jnp.moveaxis(previous, -1, 1)[..., None]], -1
        )  # [B, O, H, W, F + 1]: the same two layers for every slot
        logits = nn.Conv(1, (3, 3), name="conv2")(
            per_slot.reshape(batch * slots, height, width, -1)
        )
        return jnp.moveaxis(logits.reshape(batch, slots, height, width), 1, -1)


MODEL = Toy
VARIANTS = {"tiny": {}, "paper": {"features": 16}}
SAMPLING = "clip"
converter = None


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    pass


@dataclasses.dataclass(frozen=True)
class LossOptions:
    given_frames: int = 1
    label_smoothing: float = field(default=0.0, metadata={"help": "a float option"})

    def __post_init__(self):
        require(self.given_frames >= 1, "given_frames", "an integer >= 1", self.given_frames)


@dataclasses.dataclass(frozen=True)
class InferenceOptions:
    max_objects: int = 3
    temperature: float = 1.0


def init_variables(model: Toy, key, sample: dict) -> dict:
    frames = jnp.asarray(sample["frames"])[:, 0]
    previous = jnp.zeros((*frames.shape[:3], sample["object_valid"].shape[-1]))
    return model.init(key, frames, previous)


def training_sample(sample: SampleConfig, loss: LossOptions) -> SampleConfig:
    require(loss.given_frames < sample.num_frames, "given_frames", "< data.num_frames", loss)
    return sample


def predict(model, variables, frame, previous, valid, temperature=1.0):
    """The one recurrence step: -> probs [B, H, W, O] over the valid slots."""
    logits = model.apply(variables, frame, previous) / temperature
    return jax.nn.softmax(jnp.where(valid[:, None, None, :], logits, -1e9), axis=-1)


def loss(model, params, batch_stats, batch: dict, key, step, **options):
    o = build(LossOptions, options)
    valid = batch["object_valid"].astype(bool)
    masks = batch["masks"].astype(jnp.int32)
    target = jax.nn.one_hot(masks, valid.shape[-1])
    target = target * (1 - o.label_smoothing) + o.label_smoothing / valid.shape[-1]
    previous, losses = target[:, 0], []
    for t in range(1, batch["frames"].shape[1]):
        probs = predict(model, {"params": params}, batch["frames"][:, t], previous, valid)
        known = (masks[:, t] != 255)[..., None]
        losses.append(-jnp.sum(jnp.where(known, target[:, t] * jnp.log(probs + 1e-9), 0.0)))
        previous = target[:, t] if t < o.given_frames else jax.lax.stop_gradient(probs)
    total = sum(losses) / masks[:, 1:].size
    return total, (batch_stats, {"loss": total})


class ToyState(NamedTuple):
    previous: jax.Array  # [B, H, W, O + 1]
    valid: jax.Array  # [B, O + 1]


def propagator(model, variables, **options) -> Propagator:
    o = build(InferenceOptions, options)
    one_hot = lambda m: jax.nn.one_hot(m, o.max_objects + 1)

    def init(frame, masks, new):
        return ToyState(one_hot(masks), new.at[:, 0].set(True))

    def step(state, frame, masks, new):
        valid = state.valid | new
        probs = predict(model, variables, frame, state.previous, valid, o.temperature)
        arrived = jnp.take_along_axis(new, masks.reshape(len(masks), -1), 1)  # given pixels
        probs = jnp.where(arrived.reshape(masks.shape)[..., None], one_hot(masks), probs)
        return ToyState(probs, valid), Prediction(probs)

    return Propagator(jax.jit(init), jax.jit(step), o.max_objects)
