"""`vos_jax.load_published(path)`: a published checkpoint as a ready `segment` function, for users
who want masks, not engines."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import numpy as np

from vos_jax.families import load_model
from vos_jax.inference.engine import propagate, propagate_free
from vos_jax.io.video import read_frames


def load_published(path: str | os.PathLike, **options) -> Callable:
    """-> `segment(frames, first_mask=None, later_masks=None) -> [T, H, W] uint8 ids`.

    `path`: a checkpoint folder (its SHA256SUMS checked); `options`: the family's inference
    options (default: those it was trained with, else the family's). `frames`: a video file, a
    folder of frames or an iterable of [H, W, 3] uint8 arrays; `first_mask` [H, W] ids of frame 0
    (none for a zero-shot model); `later_masks` {t: [H, W] ids} of objects that appear later.
    The function carries `.propagator` and `.meta` (family, variant, metrics, ...).
    """
    family, model, variables, meta = load_model(path)
    trained = {k: v for k, v in meta.get("inference", {}).items() if k not in options}
    known = family.InferenceOptions.__dataclass_fields__
    propagator = family.propagator(
        model, variables, **{k: v for k, v in trained.items() if k in known}, **options
    )

    def segment(
        frames: str | os.PathLike | Iterable[np.ndarray],
        first_mask: np.ndarray | None = None,
        later_masks: dict[int, np.ndarray] | None = None,
    ) -> np.ndarray:
        if isinstance(frames, str | os.PathLike):
            frames = read_frames(frames)
        if propagator.unsupervised:
            if first_mask is not None or later_masks:
                raise ValueError("first_mask: a zero-shot model takes no masks")
            results = propagate_free(propagator, frames)
        else:
            if first_mask is None:
                raise ValueError("first_mask: this model needs frame 0's mask of object ids")
            results = propagate(propagator, frames, np.asarray(first_mask), later_masks)
        return np.stack([r.labels for r in results])

    segment.propagator, segment.meta = propagator, meta
    return segment
