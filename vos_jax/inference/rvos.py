"""RVOS inference: the recurrence over frames (SPEC section 2) as a `lax.scan` (`rollout`, used by
training too) and as the engine's `(init, step)` pair (`rvos_propagator`).

The carried state is each object slot's 4 ConvLSTM hidden states of the previous frame and, in
one-shot mode, each slot's previous mask (probabilities). Slots are static (`max_objects`), so one
compilation serves every video of a size and any object count.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from vos_jax.inference.engine import Propagator
from vos_jax.models.rvos import Rvos, State, initial_state

# The engine's background column: a pixel takes the most probable object whose sigmoid
# probability exceeds 0.5 (the official threshold), else background.
BACKGROUND_SCORE = 0.5


def encode(model: Rvos, variables, frames, normalised: bool = False, train: bool = False):
    """Skips of frames [N, H, W, 3]; `normalised`: frames are already ImageNet-normalised floats.
    With `train`, -> (skips, mutated batch_stats)."""

    def run(module, x):
        return module.encoder(x, train) if normalised else module.features(x, train)

    if train:
        return model.apply(variables, frames, method=run, mutable=["batch_stats"])
    return model.apply(variables, frames, method=run)


def decode_clip(
    model: Rvos,
    variables,
    skips,
    teacher,
    num_slots: int,
    size: tuple[int, int],
    given_frames: int = 0,
    feed_back=None,
) -> jax.Array:
    """Decode a clip's frames in order under one `lax.scan`; skips are per frame [B, T, ...].
    One-shot: `teacher` [B, T, H, W, O] holds known masks. Frame 0 takes teacher[0] as previous
    masks; frame t in 1 .. `given_frames` takes teacher[t - 1]; later frames take the sigmoid of
    the previous frame's logits (through `feed_back`, e.g. stop_gradient). Zero-shot: teacher is
    None. -> logits [B, T, H, W, O]."""
    time_major = jax.tree.map(lambda s: jnp.swapaxes(s, 0, 1), skips)
    num_frames = time_major[0].shape[0]
    state0 = initial_state(tuple(s[0] for s in time_major), num_slots, model.hidden)
    feed_back = feed_back or (lambda p: p)
    if model.one_shot:
        teacher = jnp.swapaxes(teacher.astype(jnp.float32), 0, 1)  # [T, B, H, W, O]
        known = jnp.concatenate([teacher[:1], teacher[:-1]])  # frame t: the mask of frame t - 1
        use_known = jnp.arange(num_frames) <= max(given_frames, 0)  # frame 0 always
        xs = (time_major, known, use_known)
        previous0 = known[0]
    else:
        xs, previous0 = (time_major, None, None), None

    def body(carry, inputs):
        state, own = carry
        frame_skips, known_t, use_known_t = inputs
        previous = jnp.where(use_known_t, known_t, own) if model.one_shot else None
        logits, state = model.apply(
            variables, frame_skips, state, previous, size, method=Rvos.decode
        )
        own = feed_back(jax.nn.sigmoid(logits)) if model.one_shot else None
        return (state, own), logits

    _, logits = jax.lax.scan(body, (state0, previous0), xs)
    return jnp.swapaxes(logits, 0, 1)


def rollout(
    model: Rvos,
    variables,
    frames,
    first_probs,
    num_slots: int,
    normalised: bool = False,
    given_frames: int = 0,
) -> jax.Array:
    """Sigmoid probabilities [B, T, H, W, O] of a clip [B, T, H, W, 3]. One-shot: from the first
    frame's masks [B, H, W, O] (previous masks of frames 0 .. `given_frames`), the model's own
    outputs after that; zero-shot: first_probs None."""
    batch, steps, height, width = frames.shape[:4]
    flat = frames.reshape(batch * steps, height, width, 3)
    skips = encode(model, variables, flat, normalised)
    skips = tuple(s.reshape(batch, steps, *s.shape[1:]) for s in skips)
    teacher = None
    if model.one_shot:
        teacher = jnp.broadcast_to(first_probs[:, None], (batch, steps, *first_probs.shape[1:]))
    given_frames = min(given_frames, 1)  # only frame 0's masks are known
    logits = decode_clip(model, variables, skips, teacher, num_slots, (height, width), given_frames)
    return jax.nn.sigmoid(logits)


class RvosState(NamedTuple):
    temporal: State  # each slot's 4 hidden states of the previous frame, [O, B, h, w, K]
    previous: jax.Array  # [B, h, w, O] previous masks at the input size (one-shot)
    valid: jax.Array  # [B, O + 1] bool, slots in use (slot 0, background, always)


def rvos_propagator(
    model: Rvos, variables, max_objects: int, input_height: int = 0, input_width: int = 0
) -> Propagator:
    """Jitted RVOS `init` / `step` (engine.Propagator); probs [B, H, W, O + 1] are per-slot scores:
    sigmoid probabilities, and `BACKGROUND_SCORE` in the background column.

    One-shot (semi-supervised): frame 0 is decoded with its given masks as previous masks (to
    start the temporal state) and, as in the official evaluation (`eval_previous_mask.py`), those
    masks stay the previous masks of frame 1; from frame 2 on, the model's own outputs. Objects
    handed over later start in their slot from their given mask with a zero temporal state.
    Zero-shot (unsupervised, `engine.propagate_free`): `init` only shapes the state and `step`
    decodes every frame from frame 0; every slot is a proposal; masks are ignored.
    `input_height` x `input_width` (0: the frames' own size): the model runs at that size, as the
    official code runs at 240x427 (DAVIS) or 256x448 (YouTube-VOS): frames are resized
    bilinearly, given masks by nearest neighbour, and the scores back to the frame bilinearly."""

    def input_size(frame):
        return (input_height or frame.shape[1], input_width or frame.shape[2])

    def skips_of(frame):
        size = input_size(frame)
        x = frame.astype(jnp.float32) / 255.0
        if size != frame.shape[1:3]:
            x = jax.image.resize(x, (x.shape[0], *size, 3), "bilinear", antialias=False)
        return model.apply(variables, x, method=Rvos.features)

    def decode(skips, state, frame):
        logits, temporal = model.apply(
            variables,
            skips,
            state.temporal,
            state.previous if model.one_shot else None,
            input_size(frame),
            method=Rvos.decode,
        )
        return jax.nn.sigmoid(logits), temporal

    def scores(probs, valid, frame):
        probs = jnp.where(valid[:, None, None, 1:], probs, 0.0)
        if probs.shape[1:3] != frame.shape[1:3]:
            shape = (probs.shape[0], *frame.shape[1:3], probs.shape[-1])
            probs = jax.image.resize(probs, shape, "bilinear", antialias=False)
        background = jnp.full(probs.shape[:3] + (1,), BACKGROUND_SCORE, probs.dtype)
        return jnp.concatenate([background, probs], axis=-1)

    def given(masks, frame):  # [B, H, W] slot ids -> [B, h, w, O] masks of slots 1..O
        size = input_size(frame)
        if size != masks.shape[1:]:
            masks = jax.image.resize(masks, (masks.shape[0], *size), "nearest")
        return jax.nn.one_hot(masks, max_objects + 1, dtype=jnp.float32)[..., 1:]

    def init(frame, masks, new):
        if not model.one_shot:  # zero-shot: a blank state; `step` decodes frame 0 too
            shapes = jax.eval_shape(skips_of, frame)
            temporal = initial_state(shapes, max_objects, model.hidden)
            blank = jnp.zeros((masks.shape[0], *input_size(frame), max_objects), jnp.float32)
            return RvosState(temporal, blank, jnp.ones_like(new))
        skips = skips_of(frame)
        temporal = initial_state(skips, max_objects, model.hidden)
        valid = new.at[:, 0].set(True)
        first = given(masks, frame)
        _, temporal = decode(skips, RvosState(temporal, first, valid), frame)
        return RvosState(temporal, first, valid)

    def step(state: RvosState, frame, masks, new):
        probs, temporal = decode(skips_of(frame), state, frame)
        if model.one_shot:
            arrived = new[:, None, None, 1:]
            probs = jnp.where(arrived, given(masks, frame), probs)
            slot_new = jnp.moveaxis(new[:, 1:], 1, 0)  # [O, B]
            temporal = tuple(
                jnp.where(slot_new[:, :, None, None, None], 0.0, t).astype(t.dtype)
                for t in temporal
            )
            valid = state.valid | new
        else:
            valid = state.valid
        previous = jnp.where(valid[:, None, None, 1:], probs, 0.0) if model.one_shot else probs
        return RvosState(temporal, previous, valid), scores(probs, valid, frame)

    return Propagator(
        init=jax.jit(init),
        step=jax.jit(step),
        max_objects=max_objects,
        unsupervised=not model.one_shot,
    )
