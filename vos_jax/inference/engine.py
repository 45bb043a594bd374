"""Propagate a video with any family's `(init, step)` pair (`families.propagator.Propagator`).

Two drivers: `propagate` (and `propagate_free` for unsupervised models) streams frames one by one
in constant device memory and yields a `FrameResult` per frame; `propagate_clip` runs a
fixed-length clip under `lax.scan` (benchmarks, training-time rollouts).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from vos_jax.families.propagator import Prediction, Propagator

__all__ = ["FrameResult", "ObjectSlots", "Propagator", "propagate", "propagate_clip"]


@dataclass(frozen=True)
class FrameResult:
    """The engine's record of one frame: labels, and per object (in `ids` order) a score and,
    from trackers, boxes."""

    labels: np.ndarray  # [H, W] uint8 object ids (0 background)
    ids: tuple[int, ...]  # the object ids in slot order (slots 1..n)
    scores: np.ndarray  # [n] float32 per-object confidence (1.0 where the object was given)
    boxes: np.ndarray | None = None  # [n, 4] axis-aligned (x0, y0, x1, y1), pixels
    rotated: np.ndarray | None = None  # [n, 4, 2] rotated box corners (x, y)


def _slot_scores(prediction: Prediction) -> jax.Array:
    """[B, O + 1] per-slot scores: the family's, else the highest probability of each slot."""
    if prediction.scores is not None:
        return prediction.scores
    return jnp.max(prediction.probs, axis=(1, 2))


def _record(prediction: Prediction, ids: list[int], labels: np.ndarray) -> FrameResult:
    """Batch element 0 of a prediction, restricted to the slots in use."""
    n = len(ids)
    take = lambda x: None if x is None else np.asarray(x[0, 1 : n + 1])
    return FrameResult(
        labels=labels,
        ids=tuple(ids),
        scores=np.asarray(_slot_scores(prediction)[0, 1 : n + 1], np.float32),
        boxes=take(prediction.boxes),
        rotated=take(prediction.rotated),
    )


def _given(ids: list[int], labels: np.ndarray) -> FrameResult:
    return FrameResult(labels=labels, ids=tuple(ids), scores=np.ones(len(ids), np.float32))


class ObjectSlots:
    """Maps a video's object ids (any values 1..254, e.g. 1, 3, 7) to slots 1..O and back."""

    def __init__(self, max_objects: int):
        self.max_objects = max_objects
        self.ids: list[int] = []  # slot k + 1 holds ids[k]

    def add(self, mask: np.ndarray) -> np.ndarray:
        """Register the ids of `mask` not seen yet; -> [O + 1] bool of the newly added slots."""
        new = np.zeros(self.max_objects + 1, bool)
        for obj in np.unique(mask):
            obj = int(obj)
            if obj in (0, 255) or obj in self.ids:
                continue
            if len(self.ids) == self.max_objects:
                raise ValueError(
                    f"the video has more than max_objects={self.max_objects} objects "
                    f"(ids {self.ids} + {obj}); raise max_objects"
                )
            self.ids.append(obj)
            new[len(self.ids)] = True
        return new

    def to_slots(self, mask: np.ndarray) -> np.ndarray:
        table = np.zeros(256, np.int32)
        table[self.ids] = np.arange(1, len(self.ids) + 1)
        return table[mask]

    def to_ids(self, slots: np.ndarray) -> np.ndarray:
        return np.asarray([0, *self.ids], np.uint8)[slots]


def _check_frame(t: int, frame: np.ndarray, shape, given: np.ndarray | None) -> None:
    if shape is not None and frame.shape != shape:
        raise ValueError(f"frame {t} has shape {frame.shape}, frame 0 had {shape}")
    if given is not None and given.shape != frame.shape[:2]:
        raise ValueError(f"mask of frame {t} is {given.shape}, frames are {frame.shape[:2]}")


def propagate(
    propagator: Propagator,
    frames: Iterable[np.ndarray],
    first_mask: np.ndarray,
    later_masks: dict[int, np.ndarray] | None = None,
) -> Iterator[FrameResult]:
    """Segment a video frame by frame; yields a `FrameResult` per frame.

    `frames`: [H, W, 3] uint8 arrays (any iterable: a video is never held in memory);
    `first_mask`: [H, W] ids of frame 0 (all-background is valid: nothing to track until an
    object arrives); `later_masks`: {t: [H, W] ids} for objects that first appear at frame t.
    Frame 0 yields the given mask.
    """
    later_masks = later_masks or {}
    slots = ObjectSlots(propagator.max_objects)
    state, shape, arrivals = None, None, 0  # arrivals: frames that brought objects
    for t, frame in enumerate(frames):
        frame = np.asarray(frame)
        given = first_mask if t == 0 else later_masks.get(t)
        _check_frame(t, frame, shape, given)
        shape = frame.shape
        new = slots.add(given) if given is not None else np.zeros(slots.max_objects + 1, bool)
        arrivals += bool(new.any()) or t == 0
        limit = propagator.max_arrival_frames
        if limit is not None and arrivals > limit:
            raise ValueError(
                f"frame {t} brings new objects, but the model keeps at most {limit} frames with "
                "given objects; raise that limit in its inference options"
            )
        given_slots = slots.to_slots(given) if given is not None else np.zeros(shape[:2], np.int32)
        batch = (frame[None], given_slots[None], new[None])
        if state is None:
            state = propagator.init(*batch)
            yield _given(slots.ids, slots.to_ids(given_slots))
            continue
        state, prediction = propagator.step(state, *batch)
        labels = slots.to_ids(np.asarray(jnp.argmax(prediction.probs[0], axis=-1)))
        yield _record(prediction, slots.ids, labels)


def propagate_free(propagator: Propagator, frames: Iterable[np.ndarray]) -> Iterator[FrameResult]:
    """Segment a video with an unsupervised propagator, frame by frame; yields a `FrameResult`
    per frame whose labels are the discovered objects (slot k -> id k, 0 background)."""
    if not propagator.unsupervised:
        raise ValueError("propagate_free needs an unsupervised (zero-shot) propagator")
    state, shape = None, None
    slot_ids = list(range(1, propagator.max_objects + 1))
    for t, frame in enumerate(frames):
        frame = np.asarray(frame)
        _check_frame(t, frame, shape, None)
        shape = frame.shape
        empty = np.zeros((1, *shape[:2]), np.int32)
        none = np.zeros((1, propagator.max_objects + 1), bool)
        if state is None:
            state = propagator.init(frame[None], empty, none)
        state, prediction = propagator.step(state, frame[None], empty, none)
        labels = np.asarray(jnp.argmax(prediction.probs[0], axis=-1)).astype(np.uint8)
        yield _record(prediction, slot_ids, labels)


def propagate_clip(propagator: Propagator, frames, first_masks, valid):
    """Segment a fixed clip under one `lax.scan`: frames [B, T, H, W, 3], first_masks [B, H, W]
    slot ids, valid [B, O] -> probs [B, T-1, H, W, O] of frames 1..T-1 (no new objects)."""
    state = propagator.init(frames[:, 0], first_masks, valid)
    none_new = jnp.zeros_like(valid)
    empty = jnp.zeros_like(first_masks)

    def body(state, frame):
        state, prediction = propagator.step(state, frame, empty, none_new)
        return state, prediction.probs

    _, probs = jax.lax.scan(body, state, jnp.swapaxes(frames[:, 1:], 0, 1))
    return jnp.swapaxes(probs, 0, 1)
