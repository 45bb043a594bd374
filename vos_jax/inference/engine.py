"""Propagate a video with any family's `(init, step)` pair.

A family provides two pure functions over an explicit state pytree (DESIGN "Inference engine"):
`init(frame [B,H,W,3], masks [B,H,W] slot ids, valid [B,O]) -> state` and
`step(state, frame, masks, new [B,O]) -> (state, probs [B,H,W,O])`, where `masks`/`new` hand over
objects that first appear in this frame (YouTube-VOS). Objects live on a static, padded slot axis O
(slot 0 = background), so one compilation serves every video of a frame size and any object count
up to the maximum. Two drivers: `propagate` streams frames one by one in constant device memory;
`propagate_clip` runs a fixed-length clip under `lax.scan` (benchmarks, training-time rollouts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class Propagator:
    """A family's jitted `init` and `step` (see the module docstring)."""

    init: Callable
    step: Callable
    max_objects: int  # foreground slots; arrays have max_objects + 1
    reference_frames: int | None = None  # how many frames may bring objects (None: any)
    # Unsupervised (zero-shot) models take no masks: `init` only sets up the state, `step` runs on
    # every frame, frame 0 included, and slot k is the k-th discovered object (`propagate_free`).
    unsupervised: bool = False


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


def propagate(
    propagator: Propagator,
    frames: Iterable[np.ndarray],
    first_mask: np.ndarray,
    later_masks: dict[int, np.ndarray] | None = None,
) -> Iterator[np.ndarray]:
    """Segment a video frame by frame; yields each frame's [H, W] uint8 map of object ids.

    `frames`: [H, W, 3] uint8 arrays (any iterable: a video is never held in memory);
    `first_mask`: [H, W] ids of frame 0 (all-background is valid: nothing to track until an
    object arrives); `later_masks`: {t: [H, W] ids} for objects that first appear at frame t.
    Frame 0 yields the given mask.
    """
    later_masks = later_masks or {}
    slots = ObjectSlots(propagator.max_objects)
    shape = None
    state = None
    arrivals = 0  # frames that brought objects (each takes a reference slot)
    for t, frame in enumerate(frames):
        frame = np.asarray(frame)
        if shape is None:
            shape = frame.shape
        elif frame.shape != shape:
            raise ValueError(f"frame {t} has shape {frame.shape}, frame 0 had {shape}")
        given = first_mask if t == 0 else later_masks.get(t)
        if given is not None and given.shape != shape[:2]:
            raise ValueError(f"mask of frame {t} is {given.shape}, frames are {shape[:2]}")
        new = slots.add(given) if given is not None else np.zeros(slots.max_objects + 1, bool)
        arrivals += bool(new.any()) or t == 0
        if propagator.reference_frames is not None and arrivals > propagator.reference_frames:
            raise ValueError(
                f"frame {t} brings new objects but all {propagator.reference_frames} reference "
                "frames are taken; raise max_reference_frames"
            )
        given_slots = slots.to_slots(given) if given is not None else np.zeros(shape[:2], np.int32)
        batch = (frame[None], given_slots[None], new[None])
        if state is None:
            state = propagator.init(*batch)
            yield slots.to_ids(given_slots)
            continue
        state, probs = propagator.step(state, *batch)
        yield slots.to_ids(np.asarray(jnp.argmax(probs[0], axis=-1)))


def propagate_free(propagator: Propagator, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Segment a video with an unsupervised propagator, frame by frame; yields each frame's
    [H, W] uint8 map of discovered objects (slot k -> id k, 0 background)."""
    if not propagator.unsupervised:
        raise ValueError("propagate_free needs an unsupervised (zero-shot) propagator")
    state, shape = None, None
    for t, frame in enumerate(frames):
        frame = np.asarray(frame)
        shape = shape or frame.shape
        if frame.shape != shape:
            raise ValueError(f"frame {t} has shape {frame.shape}, frame 0 had {shape}")
        empty = np.zeros((1, *shape[:2]), np.int32)
        none = np.zeros((1, propagator.max_objects + 1), bool)
        if state is None:
            state = propagator.init(frame[None], empty, none)
        state, probs = propagator.step(state, frame[None], empty, none)
        yield np.asarray(jnp.argmax(probs[0], axis=-1)).astype(np.uint8)


def propagate_clip(propagator: Propagator, frames, first_masks, valid):
    """Segment a fixed clip under one `lax.scan`: frames [B, T, H, W, 3], first_masks [B, H, W]
    slot ids, valid [B, O] -> probs [B, T-1, H, W, O] of frames 1..T-1 (no new objects)."""
    state = propagator.init(frames[:, 0], first_masks, valid)
    none_new = jnp.zeros_like(valid)
    empty = jnp.zeros_like(first_masks)

    def body(state, frame):
        return propagator.step(state, frame, empty, none_new)

    _, probs = jax.lax.scan(body, state, jnp.swapaxes(frames[:, 1:], 0, 1))
    return jnp.swapaxes(probs, 0, 1)
