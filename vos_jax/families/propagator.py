"""The inference contract between a family and the engine (`inference/engine.py`).

A family's `propagator(model, variables, **options)` returns a `Propagator`: two jitted, pure
functions over an explicit state pytree (DESIGN "Inference engine"):

    init(frame [B, H, W, 3] uint8, masks [B, H, W] int32 slot ids, new [B, O + 1] bool) -> state
    step(state, frame, masks, new) -> (state, Prediction)

`masks` / `new` hand over objects that first appear in a frame (YouTube-VOS; zeros otherwise).
Objects live on a static, padded slot axis (slot 0 = background), so one compilation serves every
video of a frame size and any object count up to `max_objects`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax


class Prediction(NamedTuple):
    """One frame's output of `step`. `probs` decides the labels (argmax over slots); the rest is
    optional: per-object confidences (default: the highest probability each slot reaches) and
    boxes for trackers."""

    probs: jax.Array  # [B, H, W, O + 1] per-pixel score of each slot (slot 0: background)
    scores: jax.Array | None = None  # [B, O + 1] per-object confidence
    boxes: jax.Array | None = None  # [B, O + 1, 4] axis-aligned (x0, y0, x1, y1), pixels
    rotated: jax.Array | None = None  # [B, O + 1, 4, 2] corners (x, y) of rotated boxes


@dataclass(frozen=True)
class Propagator:
    """A family's jitted `init` and `step` (see the module docstring)."""

    init: Callable
    step: Callable
    max_objects: int  # foreground slots; arrays have max_objects + 1
    # How many frames may bring objects (the first one included), for families that keep a
    # fixed-size memory of the frames objects were given in; None: any.
    max_arrival_frames: int | None = None
    # Unsupervised (zero-shot) models take no masks: `init` only sets up the state, `step` runs on
    # every frame, frame 0 included, and slot k is the k-th discovered object.
    unsupervised: bool = False
