"""FEELVOS inference: the `(init, step)` pair over an explicit state (SPEC section 1).

Per frame: embeddings of the frame; global matching against the reference frames' pixels of each
object (all of them, no sampling at inference, as in the official code); local matching against
the previous frame in a (2k+1)^2 window; the dynamic segmentation head per object; softmax over
objects. The reference memory has `max_reference_frames` slots of a whole stride-4 embedding map:
slot 0 is the first frame, and each frame that brings new objects (YouTube-VOS) takes the next slot
with labels for its new objects only. Global matching can run every `global_every` frames (reusing
the last map in between), which saves most of the cost on slow videos; local matching runs on
every frame.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from vos_jax.inference.engine import Propagator
from vos_jax.models.feelvos import Feelvos, probabilities, to_feature_grid, upsample
from vos_jax.ops.matching import global_matching, local_matching


class FeelvosState(NamedTuple):
    """What FEELVOS carries from frame to frame (S reference slots; h, w at stride 4)."""

    reference: jax.Array  # [B, S, h, w, D] embeddings of the reference frames
    reference_labels: jax.Array  # [B, S, h, w] int32 object slot, -1 = not a reference pixel
    next_slot: jax.Array  # [] int32, the reference slot the next new objects go to
    previous: jax.Array  # [B, h, w, D] embeddings of the previous frame
    previous_labels: jax.Array  # [B, h, w] int32 predicted (or given) slots of the previous frame
    previous_probs: jax.Array  # [B, h, w, O] float32
    global_map: jax.Array  # [B, h, w, O] the last global matching
    valid: jax.Array  # [B, O] bool, slots in use (slot 0, background, always)
    global_stale: jax.Array  # [] bool: new objects arrived, refresh the global map next frame
    frame_index: jax.Array  # [] int32, index of the previous frame


def feelvos_propagator(
    model: Feelvos,
    variables,
    max_objects: int,
    max_reference_frames: int = 1,
    global_every: int = 1,
    max_displacement: int = 15,
) -> Propagator:
    """Jitted FEELVOS `init` / `step` for `model` with `variables` (see engine.Propagator)."""
    num_slots = max_objects + 1

    def embed(frame):
        return model.apply(variables, frame, train=False, method=Feelvos.features)

    def init(frame, masks, new):
        features, emb = embed(frame)
        labels = to_feature_grid(masks)
        valid = new.at[:, 0].set(True)
        reference = jnp.zeros((emb.shape[0], max_reference_frames, *emb.shape[1:]), emb.dtype)
        reference_labels = jnp.full(reference.shape[:-1], -1, jnp.int32)
        probs = jax.nn.one_hot(labels, num_slots, dtype=jnp.float32)
        return FeelvosState(
            reference=reference.at[:, 0].set(emb),
            reference_labels=reference_labels.at[:, 0].set(labels),
            next_slot=jnp.int32(1),
            previous=emb,
            previous_labels=labels,
            previous_probs=probs,
            global_map=jnp.ones(probs.shape, jnp.float32),
            valid=valid,
            global_stale=jnp.bool_(False),
            frame_index=jnp.int32(0),
        )

    def step(state: FeelvosState, frame, masks, new):
        features, emb = embed(frame)
        batch, dim = emb.shape[0], emb.shape[-1]

        def match_global(_):
            reference = state.reference.reshape(batch, -1, dim)
            labels = state.reference_labels.reshape(batch, -1)
            return global_matching(emb, reference, labels, num_slots)

        # Frames 1, 1 + N, 1 + 2N, ... (and the frame after new objects arrive) match globally.
        refresh = (state.frame_index % global_every == 0) | state.global_stale
        global_map = jax.lax.cond(refresh, match_global, lambda _: state.global_map, None)
        local_map = local_matching(
            emb, state.previous, state.previous_labels, num_slots, max_displacement
        )
        logits = model.apply(
            variables,
            features,
            global_map,
            local_map,
            state.previous_probs,
            state.valid,
            train=False,
            method=Feelvos.segment,
        )
        # Objects handed over in this frame: their given mask replaces the prediction.
        given = to_feature_grid(masks)
        is_new = jnp.take_along_axis(new, given.reshape(batch, -1), axis=1).reshape(given.shape)
        small_probs = probabilities(logits, state.valid | new)
        # FEELVOS: softmax over objects, upsample to the frame, argmax.
        full_probs = upsample(small_probs, frame.shape[1:3])
        small_probs = jnp.where(
            is_new[..., None], jax.nn.one_hot(given, num_slots, dtype=jnp.float32), small_probs
        )
        labels = jnp.argmax(small_probs, axis=-1).astype(jnp.int32)
        full_new = jnp.take_along_axis(new, masks.reshape(batch, -1), axis=1).reshape(masks.shape)
        full_probs = jnp.where(
            full_new[..., None], jax.nn.one_hot(masks, num_slots, dtype=jnp.float32), full_probs
        )
        # New objects become references: their pixels of this frame go into the next slot.
        any_new = jnp.any(new[:, 1:])
        slot = jnp.minimum(state.next_slot, max_reference_frames - 1)  # the driver checks room
        new_labels = jnp.where(is_new, given, -1)
        reference = jnp.where(any_new, state.reference.at[:, slot].set(emb), state.reference)
        reference_labels = jnp.where(
            any_new, state.reference_labels.at[:, slot].set(new_labels), state.reference_labels
        )
        state = FeelvosState(
            reference=reference,
            reference_labels=reference_labels,
            next_slot=state.next_slot + any_new.astype(jnp.int32),
            previous=emb,
            previous_labels=labels,
            previous_probs=small_probs,
            global_map=global_map,
            valid=state.valid | new,
            global_stale=any_new,
            frame_index=state.frame_index + 1,
        )
        return state, full_probs

    return Propagator(
        init=jax.jit(init),
        step=jax.jit(step),
        max_objects=max_objects,
        reference_frames=max_reference_frames,
    )
