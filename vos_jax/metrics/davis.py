"""DAVIS region similarity J, boundary accuracy F and their statistics (SPEC section 5).

Semantics are those of the official davis2017-evaluation toolkit, edge cases included; only the
way of computing them differs. The toolkit loops over every (proposal, object, frame) triple and
dilates both boundaries each time on the full frame. Here, per frame, one joint histogram of the
two id maps gives every intersection and area, one pass finds every object's boundary pixels, each
boundary is dilated once on a crop around it, and pairs are scored by counting boundary pixels
inside the other's dilation. The counts are integers either way, so every ratio is bitwise the
toolkit's.

Shapes: P result masks (proposals or objects), G ground-truth objects, T frames, H W pixels.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import cv2
import numpy as np

from vos_jax.io.masks import VOID_ID

BOUNDARY_FRACTION = 0.008  # boundary tolerance: this fraction of the image diagonal (toolkit)
MAX_PROPOSALS = 20  # unsupervised protocol: at most this many proposals per sequence


class ProtocolError(ValueError):
    """Results that the DAVIS protocol rejects (too many ids / proposals); `frame` indexes the
    first result frame at fault."""

    def __init__(self, message: str, frame: int):
        super().__init__(message)
        self.frame = frame


def _first_frame_above(ids: np.ndarray, limit: int) -> int:
    return int(np.argmax(ids.reshape(len(ids), -1).max(axis=1) > limit))


def boundary_radius(height: int, width: int) -> int:
    """Dilation radius of the F measure: ceil(0.008 * image diagonal), 8 px at 480x854."""
    return int(math.ceil(BOUNDARY_FRACTION * math.hypot(height, width)))


def disk(radius: int) -> np.ndarray:
    """The disk structuring element of skimage.morphology.disk: x^2 + y^2 <= r^2."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).astype(np.uint8)


def boundary_map(masks: np.ndarray) -> np.ndarray:
    """Boundary pixels of binary masks [..., H, W]: pixels that differ from their east, south or
    south-east neighbour (the toolkit's `_seg2bmap`); the last row and column compare only along
    themselves and the bottom-right pixel is never a boundary."""
    seg = masks.astype(bool)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[..., :, :-1] = seg[..., :, 1:]
    south[..., :-1, :] = seg[..., 1:, :]
    south_east[..., :-1, :-1] = seg[..., 1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[..., -1, :] = seg[..., -1, :] ^ east[..., -1, :]
    bmap[..., :, -1] = seg[..., :, -1] ^ south[..., :, -1]
    bmap[..., -1, -1] = False
    return bmap


def _boundary_pixels(ids: np.ndarray, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Boundary pixels (rows, cols) of each object 1..count of an [H, W] id map, by the rule of
    `boundary_map`: where a pixel and an existing E, S or SE neighbour have different ids, the pixel
    is on the boundary of both ids (inside one mask, outside the other). One pass for all objects.
    """
    height, width = ids.shape
    # Edge padding makes the missing neighbours of the last row / column copies of existing ones,
    # which reproduces the toolkit's special rules for them (compare along the edge only).
    padded = np.pad(ids, ((0, 1), (0, 1)), mode="edge")
    neighbours = (padded[:-1, 1:], padded[1:, :-1], padded[1:, 1:])  # E, S, SE
    rows, cols = np.nonzero(
        (ids != neighbours[0]) | (ids != neighbours[1]) | (ids != neighbours[2])
    )
    flat = rows * width + cols
    here = ids[rows, cols]
    keys = [here.astype(np.int64) * ids.size + flat]
    for other in neighbours:
        other = other[rows, cols]
        differs = other != here
        keys.append(other[differs].astype(np.int64) * ids.size + flat[differs])
    keys = np.sort(np.concatenate(keys))  # by id, then by pixel; np.unique is slower here
    keys = keys[np.diff(keys, prepend=-1) != 0]
    starts = np.searchsorted(keys, np.arange(1, count + 2, dtype=np.int64) * ids.size)
    return [np.divmod(keys[starts[k] : starts[k + 1]] % ids.size, width) for k in range(count)]


def _dilate(pixels: tuple[np.ndarray, np.ndarray], kernel: np.ndarray):
    """Dilation of a boundary by `kernel`, on its bounding box grown by the kernel radius (nothing
    outside it can be reached) -> (row0, col0, [h, w] bool), or None for an empty boundary."""
    rows, cols = pixels
    if rows.size == 0:
        return None
    r = kernel.shape[0] // 2
    row0, col0 = rows.min() - r, cols.min() - r
    crop = np.zeros((rows.max() - row0 + r + 1, cols.max() - col0 + r + 1), np.uint8)
    crop[rows - row0, cols - col0] = 1
    return row0, col0, cv2.dilate(crop, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0


def _count_within(pixels: tuple[np.ndarray, np.ndarray], dilated) -> int:
    """How many of `pixels` lie inside a dilated boundary (within the tolerance of it)."""
    if dilated is None:
        return 0
    row0, col0, mask = dilated
    rows, cols = pixels[0] - row0, pixels[1] - col0
    inside = (rows >= 0) & (rows < mask.shape[0]) & (cols >= 0) & (cols < mask.shape[1])
    return int(np.count_nonzero(mask[rows[inside], cols[inside]]))


def frame_scores(
    result_ids: np.ndarray,
    target_ids: np.ndarray,
    num_results: int,
    num_targets: int,
    frame_shape: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """J and F of every (result, target) pair of one frame.

    result_ids, target_ids [H, W] id maps -> (J [P, G], F [P, G]) float64 for result ids
    1..P=num_results and target ids 1..G=num_targets. J = |R & G| / |R | G| (1 when the union is
    empty). F = harmonic mean of boundary precision and recall at tolerance
    `boundary_radius(*frame_shape)`, with the toolkit's conventions: both boundaries empty -> 1,
    exactly one empty -> 0. `frame_shape` is the full frame's when the maps are a crop of it (the
    tolerance depends on the frame, not the crop). To exclude void pixels as the toolkit does, set
    them to 0 in both maps: that leaves exactly the toolkit's void-excluded counts.
    """
    # Every pixel has one result id and one target id, so one joint histogram holds all the
    # intersections and areas.
    joint = result_ids.astype(np.int64).ravel() * (num_targets + 1) + target_ids.ravel()
    hist = np.bincount(joint, minlength=(num_results + 1) * (num_targets + 1))
    hist = hist.reshape(num_results + 1, num_targets + 1)
    inter = hist[1:, 1:]
    union = hist[1:].sum(axis=1)[:, None] + hist[:, 1:].sum(axis=0)[None, :] - inter
    j = np.where(union == 0, 1.0, inter / np.maximum(union, 1))

    kernel = disk(boundary_radius(*(frame_shape or result_ids.shape)))
    b_res = _boundary_pixels(result_ids, num_results)
    b_tgt = _boundary_pixels(target_ids, num_targets)
    d_res = [_dilate(b, kernel) for b in b_res]
    d_tgt = [_dilate(b, kernel) for b in b_tgt]
    # Numerators of precision and recall: result boundary pixels near the target's boundary, and
    # target boundary pixels near the result's.
    shape = (num_results, num_targets)
    res_matched = np.array([_count_within(b, d) for b in b_res for d in d_tgt], np.int64)
    tgt_matched = np.array([_count_within(b, d) for d in d_res for b in b_tgt], np.int64)
    n_res = np.array([b[0].size for b in b_res], np.int64)[:, None]
    n_tgt = np.array([b[0].size for b in b_tgt], np.int64)[None, :]
    return j, _f_measure(res_matched.reshape(shape), tgt_matched.reshape(shape), n_res, n_tgt)


def _support_box(*id_maps: np.ndarray) -> tuple[slice, slice]:
    """The bounding box of the non-zero pixels of [H, W] maps, grown by one pixel (so that boundary
    pixels keep their neighbours); outside it every mask is empty and adds nothing to any count."""
    support = np.logical_or.reduce([m > 0 for m in id_maps])
    rows, cols = np.flatnonzero(support.any(axis=1)), np.flatnonzero(support.any(axis=0))
    if rows.size == 0:
        return slice(0, 1), slice(0, 1)
    height, width = support.shape
    return (
        slice(max(rows[0] - 1, 0), min(rows[-1] + 2, height)),
        slice(max(cols[0] - 1, 0), min(cols[-1] + 2, width)),
    )


def sequence_scores(
    result_ids: np.ndarray, target_ids: np.ndarray, num_results: int, num_targets: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F of every (result id, target id) pair over a sequence.

    result_ids, target_ids [T, H, W] id maps (void already set to 0 in both) -> (J [P, G, T],
    F [P, G, T]) for result ids 1..P=num_results and target ids 1..G=num_targets. Each frame is
    scored on the crop that holds all its masks.
    """
    num_frames = target_ids.shape[0]
    j = np.zeros((num_results, num_targets, num_frames))
    f = np.zeros_like(j)
    for t in range(num_frames):
        box = _support_box(result_ids[t], target_ids[t])
        j[..., t], f[..., t] = frame_scores(
            result_ids[t][box], target_ids[t][box], num_results, num_targets, target_ids.shape[1:]
        )
    return j, f


def _f_measure(res_matched, tgt_matched, n_res, n_tgt) -> np.ndarray:
    """The toolkit's precision / recall case analysis, vectorised over pairs."""
    n_res, n_tgt = np.broadcast_arrays(n_res, n_tgt)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = res_matched / n_res.astype(np.float64)
        recall = tgt_matched / n_tgt.astype(np.float64)
    res_empty, tgt_empty = n_res == 0, n_tgt == 0
    precision = np.where(res_empty, 1.0, np.where(tgt_empty, 0.0, precision))
    recall = np.where(tgt_empty, 1.0, np.where(res_empty, 0.0, recall))
    total = precision + recall
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(total == 0, 0.0, 2 * precision * recall / total)
    return f


def statistics(per_frame: np.ndarray) -> tuple[float, float, float]:
    """(mean, recall, decay) of one object's per-frame values, as the toolkit's `db_statistics`.

    Recall is the fraction of frames above 0.5. Decay is the mean of the first of 4 bins minus the
    mean of the last, the bin edges rounded from linspace(1, T, 5); neighbouring bins share their
    edge frame. The toolkit casts the edges to uint8, which wraps for T > 256 frames; here they
    stay integers, so up to 256 frames the result is the toolkit's and beyond it the bins are the
    intended quarters of the sequence.
    """
    values = np.asarray(per_frame, dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = float(np.nanmean(values))
        recall = float(np.nanmean(values > 0.5))
        edges = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.int64)
        bins = [values[edges[i] : edges[i + 1] + 1] for i in range(4)]
        decay = float(np.nanmean(bins[0]) - np.nanmean(bins[3]))
    return mean, recall, decay


@dataclass(frozen=True)
class SequenceResult:
    """Per-frame J and F [G, T'] of each ground-truth object over the protocol's frames, and which
    result id was scored against each object (k+1 in semi-supervised, the Hungarian match in
    unsupervised, 0 for a missing proposal)."""

    j: np.ndarray
    f: np.ndarray
    result_ids: np.ndarray


def evaluate_semisupervised(gt_ids: np.ndarray, result_ids: np.ndarray) -> SequenceResult:
    """Semi-supervised protocol for one sequence.

    gt_ids [T, H, W] (255 = void), result_ids [T-2, H, W] for frames 1..T-2 (the toolkit drops the
    first frame, which is given, and the last). Objects are ids 1..max(first gt frame); result ids
    beyond that are an error, missing ones count as empty masks. Void is not excluded here: the
    toolkit passes no void mask in this protocol (void pixels are simply background).
    """
    gt_ids = gt_ids.copy()
    gt_ids[gt_ids == VOID_ID] = 0
    num_objects = int(gt_ids[0].max(initial=0))
    num_results = int(result_ids.max(initial=0))
    if num_results > num_objects:
        raise ProtocolError(
            f"result id {num_results} is higher than the number of objects in the first "
            f"ground-truth frame ({num_objects})",
            _first_frame_above(result_ids, num_objects),
        )
    j, f = sequence_scores(result_ids, gt_ids[1:-1], num_objects, num_objects)
    objects = np.arange(num_objects)
    return SequenceResult(j[objects, objects], f[objects, objects], objects + 1)


def evaluate_unsupervised(
    gt_ids: np.ndarray, result_ids: np.ndarray, metrics: tuple[str, ...] = ("J", "F")
) -> SequenceResult:
    """Unsupervised protocol for one sequence: all frames, at most 20 proposals, each ground-truth
    object matched to one proposal by the Hungarian algorithm on (mean J + mean F) / 2.

    gt_ids [T, H, W] (255 = void, excluded from both measures), result_ids [T, H, W]. Objects are
    listed in the toolkit's order: by the index of the proposal assigned to them.
    """
    void = gt_ids == VOID_ID
    num_objects = int(np.where(void[0], 0, gt_ids[0]).max(initial=0))
    num_proposals = int(result_ids.max(initial=0))
    if num_proposals > MAX_PROPOSALS:
        raise ProtocolError(
            f"result id {num_proposals} exceeds the {MAX_PROPOSALS} proposals the unsupervised "
            "protocol allows",
            _first_frame_above(result_ids, MAX_PROPOSALS),
        )
    # Masking void out of both masks leaves exactly the toolkit's void-excluded counts.
    gt_ids, result_ids = gt_ids.copy(), result_ids.copy()
    gt_ids[void], result_ids[void] = 0, 0
    j, f = sequence_scores(result_ids, gt_ids, max(num_proposals, num_objects), num_objects)
    if "J" in metrics and "F" in metrics:
        score = (j.mean(axis=2) + f.mean(axis=2)) / 2
    else:
        score = j.mean(axis=2) if "J" in metrics else f.mean(axis=2)
    from scipy.optimize import linear_sum_assignment  # 0.5 s to import: only when needed

    rows, cols = linear_sum_assignment(-score)
    proposal = rows + 1
    proposal[proposal > num_proposals] = 0  # padded, empty proposals
    return SequenceResult(j[rows, cols], f[rows, cols], proposal)
