"""Which frames of a video make a training sample, and which objects it trains on.

- `triplet` (Voigtlaender et al. 2019, SPEC section 1): a reference frame, a previous frame and
  the current frame, previous -> current `1..max_gap` frames apart (adjacent by default, as the
  official `sample_adjacent_and_consistent_query_frames=True`, the official common.py:42).
- `clip` (Ventura et al. 2019, SPEC section 2): T frames at a fixed stride from a random start.
- `static` (MaskTrack, SPEC section 4): one annotated frame, turned into a pseudo-video by
  augmentation (see `augment.static_pseudo_video`).
Only annotated frames are sampled. Objects are the ids of the sample's first frame, renumbered
1..O with background 0 and padded to a static `max_objects` with a validity mask.
`select_objects` keeps only some objects (a category's, e.g. YouTube-VOS's people) and can merge
them into one (one mask of several people). `enough_reference_pixels` filters out samples whose
reference frame shows an object too small to match against (Voigtlaender et al.'s official
sampler).
"""

from __future__ import annotations

import cv2
import numpy as np

from vos_jax.io.masks import VOID_ID, object_ids


def triplet_indices(annotated: np.ndarray, max_gap: int, rng: np.random.Generator) -> np.ndarray:
    """[3] frame indices (reference, previous, current) among the annotated frames [T] bool.

    Current is any annotated frame but the first; previous an annotated frame 1..max_gap before it
    (the nearest earlier one if none is that close); reference any annotated frame but the current
    (the paper trains with a random reference, not only frame 0, to see more appearance changes).
    A video with a single annotated frame gives that frame three times.

    With max_gap = 1 (the default) previous and current are adjacent annotated frames, as in the
    official sampler (the official utils/video_input_generator.py:332-353: query start uniform in
    [0, T-3], queries start and start + 1). Two deliberate differences: the official reference is
    uniform over all frames, the current one included, and its current frame is never the last.
    """
    frames = np.flatnonzero(annotated)
    if frames.size == 0:
        raise ValueError("the video has no annotated frame")
    if frames.size == 1:
        return np.repeat(frames, 3)
    k = rng.integers(1, frames.size)
    current = frames[k]
    earlier = frames[:k]
    close = earlier[earlier >= current - max_gap]
    previous = rng.choice(close) if close.size else earlier[-1]
    others = frames[frames != current]
    reference = rng.choice(others)
    return np.array([reference, previous, current])


def clip_indices(
    annotated: np.ndarray, length: int, stride: int, rng: np.random.Generator
) -> np.ndarray:
    """[length] indices of annotated frames `stride` apart (in annotated-frame order) from a
    random start; a video too short repeats its last frame (static shapes for the model)."""
    frames = np.flatnonzero(annotated)
    if frames.size == 0:
        raise ValueError("the video has no annotated frame")
    span = (length - 1) * stride + 1
    start = rng.integers(0, max(frames.size - span, 0) + 1)
    picks = np.minimum(start + stride * np.arange(length), frames.size - 1)
    return frames[picks]


def remap_objects(
    masks: np.ndarray, max_objects: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Renumber a sample's objects 1..O and pad to a static object axis.

    masks [T, H, W] ids (255 = void) -> (masks [T, H, W] with ids 0..max_objects and 255,
    object_valid [max_objects + 1] bool; slot 0 is the background and always valid).
    The objects are those present in the first frame of the sample (after cropping; an object
    cropped away is gone); others become background, as the model cannot know them. Beyond
    `max_objects`, a random subset is kept and the rest become void, so no loss is taken on them.
    """
    ids = object_ids(masks[0]).astype(np.uint8)
    keep = np.sort(rng.choice(ids, max_objects, replace=False)) if ids.size > max_objects else ids
    table = np.zeros(256, np.uint8)  # ids absent from the first frame -> background
    table[VOID_ID] = VOID_ID
    table[ids] = VOID_ID  # objects beyond the budget: ignored, not background
    table[keep] = np.arange(1, keep.size + 1)
    valid = np.zeros(max_objects + 1, bool)
    valid[: keep.size + 1] = True
    # As a 2-D image: OpenCV would read a 3-D array's last axis (W) as up to 128 channels.
    flat = masks.reshape(-1, masks.shape[-1])
    return cv2.LUT(flat, table).reshape(masks.shape), valid


def select_objects(masks: np.ndarray, keep_ids: tuple[int, ...] | None, merge: bool) -> np.ndarray:
    """masks [..., H, W] ids -> the same with only `keep_ids` (None: every object; others become
    background) and, with `merge`, all of them as object 1 (void stays void)."""
    if keep_ids is None and not merge:
        return masks
    table = np.arange(256, dtype=np.uint8)
    if keep_ids is not None:
        table[:VOID_ID] = 0
        table[list(keep_ids)] = list(keep_ids)
    if merge:
        table[1:VOID_ID] = np.minimum(table[1:VOID_ID], 1)
    return table[masks]


def enough_reference_pixels(mask: np.ndarray, min_pixels: int) -> bool:
    """The official triplet sampler's small-object filter on a (cropped) reference mask [H, W].

    Official (utils/video_input_generator.py:28, 136-194, 522-537, MIN_LABEL_COUNT = 10):
    the reference labels nearest-resized with align_corners to the stride-4 grid, every label
    present (background and void included) must have >= min_pixels pixels there, and foreground
    (anything but 0) and background >= min_pixels each; a failing sample is dropped. The grid is
    pixel 4 j (`mask[::4, ::4]`): the official one for crops of 4 k + 1 pixels (465), and the
    stride-4 sampling of the models' features. min_pixels = 0: no filter.
    """
    if min_pixels <= 0:
        return True
    counts = np.bincount(mask[::4, ::4].ravel(), minlength=256)
    background, foreground = counts[0], counts.sum() - counts[0]
    present = counts[counts > 0]
    return bool(
        background >= min_pixels and foreground >= min_pixels and present.min() >= min_pixels
    )
