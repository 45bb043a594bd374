"""Propagate a video with any family's `(init, step)` pair (`families.propagator.Propagator`).

Two drivers: `propagate_videos` streams the frames of many videos, a batch of videos per compiled
call, in constant device memory and yields a `FrameResult` per frame (`propagate`, and
`propagate_free` for unsupervised models: one video); `propagate_clip` runs a fixed-length clip
under `lax.scan` (benchmarks, training-time rollouts).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from vos_jax.families.propagator import Prediction, Propagator

__all__ = [
    "FrameResult", "ObjectSlots", "Propagator", "Video", "propagate", "propagate_clip",
    "propagate_free", "propagate_videos",
]  # fmt: skip


@dataclass(frozen=True)
class FrameResult:
    """The engine's record of one frame: labels, and per object (in `ids` order) a score and,
    from trackers, boxes."""

    labels: np.ndarray  # [H, W] uint8 object ids (0 background)
    ids: tuple[int, ...]  # the object ids in slot order (slots 1..n)
    scores: np.ndarray  # [n] float32 per-object confidence (1.0 where the object was given)
    boxes: np.ndarray | None = None  # [n, 4] axis-aligned (x0, y0, x1, y1), pixels
    rotated: np.ndarray | None = None  # [n, 4, 2] rotated box corners (x, y)
    probs: np.ndarray | None = None  # [H, W, n + 1] float32, background first (keep_probs)


def _slot_scores(prediction: Prediction) -> jax.Array:
    """[B, O + 1] per-slot scores: the family's, else the highest probability of each slot."""
    if prediction.scores is not None:
        return prediction.scores
    return jnp.max(prediction.probs, axis=(1, 2))


def _record(
    prediction: Prediction, b: int, ids: list[int], labels: np.ndarray, probs: bool
) -> FrameResult:
    """Batch element b of a prediction, restricted to the slots in use."""
    n = len(ids)
    take = lambda x: None if x is None else np.asarray(x[b, 1 : n + 1])
    return FrameResult(
        labels=labels,
        ids=tuple(ids),
        scores=np.asarray(_slot_scores(prediction)[b, 1 : n + 1], np.float32),
        boxes=take(prediction.boxes),
        rotated=take(prediction.rotated),
        probs=np.asarray(prediction.probs[b, ..., : n + 1], np.float32) if probs else None,
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


@dataclass(frozen=True)
class Video:
    """One video for `propagate_videos`: its frames ([H, W, 3] uint8, any iterable: read as
    needed), frame 0's mask of object ids (None for an unsupervised propagator; all-background
    is valid) and {t: mask} of the objects that first appear at frame t."""

    frames: Iterable[np.ndarray]
    first_mask: np.ndarray | None = None
    later_masks: dict[int, np.ndarray] | None = None


class _Stream:
    """One video's place in a batch: its reader, its object ids <-> slots, its arrivals."""

    def __init__(self, index: int, video: Video, propagator: Propagator):
        self.index, self.frames = index, iter(video.frames)
        self.objects = ObjectSlots(propagator.max_objects)
        self.given = {0: video.first_mask, **(video.later_masks or {})}
        self.limit = propagator.max_arrival_frames
        self.t, self.shape, self.arrivals, self.last = -1, None, 0, None
        if propagator.unsupervised:  # the discovered objects: slot k -> id k
            if video.first_mask is not None:
                raise ValueError("an unsupervised (zero-shot) propagator takes no masks")
            self.objects.ids = list(range(1, propagator.max_objects + 1))

    def read(self) -> np.ndarray | None:
        """The video's next frame (checked), or None once it has ended."""
        frame = next(self.frames, None)
        if frame is None:
            return None
        self.t += 1
        self.last = frame = np.asarray(frame)
        given = self.given.get(self.t)
        if self.shape is not None and frame.shape != self.shape:
            raise ValueError(f"frame {self.t} has shape {frame.shape}, frame 0 had {self.shape}")
        if given is not None and given.shape != frame.shape[:2]:
            raise ValueError(
                f"mask of frame {self.t} is {given.shape}, frames are {frame.shape[:2]}"
            )
        self.shape = frame.shape
        return frame

    def inputs(self, frame: np.ndarray):
        """(frame, given slot ids [H, W], newly given slots [O + 1]) of the frame just read."""
        given = self.given.get(self.t)
        none = np.zeros(self.objects.max_objects + 1, bool)
        new = self.objects.add(given) if given is not None else none
        self.arrivals += bool(new.any()) or self.t == 0
        if self.limit is not None and self.arrivals > self.limit:
            raise ValueError(
                f"frame {self.t} brings new objects, but the model keeps at most {self.limit} "
                "frames with given objects; raise that limit in its inference options"
            )
        none_given = np.zeros(frame.shape[:2], np.int32)
        slots = self.objects.to_slots(given) if given is not None else none_given
        return frame, slots, new


def _idle(shape, slots: int, frame=None):
    """The inputs of a batch element with no video (ended, or beyond the last video): its last
    frame again (or zeros), nothing given; its predictions are dropped."""
    frame = np.zeros(shape, np.uint8) if frame is None else frame
    return frame, np.zeros(shape[:2], np.int32), np.zeros(slots, bool)


def _propagate_group(propagator, streams: list[_Stream], batch: int, pool, probs: bool):
    state, first = None, True
    while True:
        frames = list(pool.map(_Stream.read, streams))  # the videos' next frames, side by side
        if first and any(f is None for f in frames):
            raise ValueError(f"video {streams[frames.index(None)].index} has no frames")
        if all(f is None for f in frames):
            return
        shapes = {s.shape for s in streams}
        if len(shapes) > 1:
            raise ValueError(
                f"videos {[s.index for s in streams]} have frames of sizes {sorted(shapes)}: "
                "a batch takes videos of one size (group them by size)"
            )
        shape, slots = streams[0].shape, propagator.max_objects + 1
        inputs = [
            stream.inputs(f) if f is not None else _idle(shape, slots, stream.last)
            for stream, f in zip(streams, frames, strict=True)
        ] + [_idle(shape, slots)] * (batch - len(streams))
        arrays = (
            np.stack([x[0] for x in inputs]),
            np.stack([x[1] for x in inputs]),
            np.stack([x[2] for x in inputs]),
        )
        if first:
            first, state = False, propagator.init(*arrays)
            if not propagator.unsupervised:  # frame 0 is given
                for stream, (frame, given, _) in zip(streams, inputs, strict=False):
                    labels = stream.objects.to_ids(given)
                    yield stream.index, frame, _given(stream.objects.ids, labels)
                continue
        state, prediction = propagator.step(state, *arrays)
        labels = np.asarray(jnp.argmax(prediction.probs, axis=-1))  # [B, H, W] slots
        for b, (stream, frame) in enumerate(zip(streams, frames, strict=True)):
            if frame is not None:
                ids, labels_b = stream.objects.ids, stream.objects.to_ids(labels[b])
                yield stream.index, frame, _record(prediction, b, ids, labels_b, probs)


def propagate_videos(
    propagator: Propagator, videos: Iterable[Video], batch: int = 1, keep_probs: bool = False
) -> Iterator[tuple[int, np.ndarray, FrameResult]]:
    """Segment many videos `batch` at a time, each step of a batch in one compiled call; yields
    (index of the video in `videos`, frame, `FrameResult`) as frames are done, every video's in
    its frame order. The videos of a batch start together; one that ends first idles (its last
    frame again, its predictions dropped) until the longest ends, and a last batch with fewer
    videos is padded with empty ones, so every call has the same shapes: one compilation per
    frame size. Videos of one batch must share their frame size (group them by size, longest
    first within a size, to idle least: `segment_videos` does). Frames of a batch's videos are
    read side by side, one reader thread per video. Each video's results equal those of
    batch 1 (the batch elements never mix; float32 rounding may differ in the last bits).
    `keep_probs`: each predicted frame's result carries its probabilities."""
    if batch < 1:
        raise ValueError(f"batch={batch}: expected a positive number of videos per call")
    indexed = enumerate(videos)
    with ThreadPoolExecutor(batch, thread_name_prefix="frames") as pool:
        while group := [_Stream(i, v, propagator) for i, v in itertools.islice(indexed, batch)]:
            yield from _propagate_group(propagator, group, batch, pool, keep_probs)


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
    if first_mask is None:
        raise ValueError("first_mask: the first frame's [H, W] object ids (zeros: none yet)")
    video = Video(frames, np.asarray(first_mask), later_masks)
    for _, _, result in propagate_videos(propagator, [video]):
        yield result


def propagate_free(propagator: Propagator, frames: Iterable[np.ndarray]) -> Iterator[FrameResult]:
    """Segment a video with an unsupervised propagator, frame by frame; yields a `FrameResult`
    per frame whose labels are the discovered objects (slot k -> id k, 0 background)."""
    if not propagator.unsupervised:
        raise ValueError("propagate_free needs an unsupervised (zero-shot) propagator")
    for _, _, result in propagate_videos(propagator, [Video(frames)]):
        yield result


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
