"""How objects move in mask videos: the statistics that the synthetic "davis" preset matches to
real DAVIS (benchmarks/motion_stats.py measures both).

Motion, per object and pair of consecutive frames where it is visible in both: the displacement
of its centroid relative to its size (sqrt of its area in the earlier frame), and the scale change
|log sqrt(area ratio)|, as median and 90th percentile over all pairs. Events: the share of videos
in which an object leaves the view for good, and of objects that enter it through the border.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from vos_jax.io.masks import object_ids


def motion_pairs(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """masks uint8 [T, H, W] (0 background, 255 void) -> (relative displacement [N], scale
    change [N]) over every object's consecutive visible pairs."""
    displacement, scale = [], []
    for k in object_ids(masks.reshape(-1, masks.shape[-1])):
        previous = None
        for frame in masks == k:
            area = int(frame.sum())
            if area == 0:
                previous = None
                continue
            ys, xs = np.nonzero(frame)
            centre = np.array([ys.mean(), xs.mean()])
            if previous is not None:
                last_centre, last_area = previous
                displacement.append(np.linalg.norm(centre - last_centre) / np.sqrt(last_area))
                scale.append(abs(0.5 * np.log(area / last_area)))
            previous = (centre, area)
    return np.asarray(displacement, np.float64), np.asarray(scale, np.float64)


def motion_statistics(videos: Iterable[np.ndarray]) -> dict[str, float]:
    """Median and 90th percentile of displacement and scale change over mask videos."""
    parts = [motion_pairs(masks) for masks in videos]
    displacement = np.concatenate([p[0] for p in parts])
    scale = np.concatenate([p[1] for p in parts])
    if not displacement.size:
        raise ValueError("no object is visible in two consecutive frames")
    return {
        "pairs": int(displacement.size),
        "displacement_median": float(np.median(displacement)),
        "displacement_p90": float(np.percentile(displacement, 90)),
        "scale_median": float(np.median(scale)),
        "scale_p90": float(np.percentile(scale, 90)),
    }


def _touches_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def events(masks: np.ndarray, cut: float = 0.5) -> tuple[bool, int, int]:
    """masks uint8 [T, H, W] -> (an object seen in frame 0 is gone in the last frame, objects
    that enter the view: first seen touching the border with under `cut` of their largest area,
    number of objects)."""
    ids = object_ids(masks.reshape(-1, masks.shape[-1]))
    left, entering = False, 0
    for k in ids:
        frames = masks == k
        area = frames.reshape(len(frames), -1).sum(1)
        left |= bool(area[0] and not area[-1])
        first = int(np.flatnonzero(area)[0])
        entering += int(_touches_border(frames[first]) and area[first] < cut * area.max())
    return left, entering, len(ids)


def event_statistics(videos: Iterable[np.ndarray]) -> dict[str, float]:
    """How often objects leave the view (share of videos) and enter it (share of objects)."""
    found = [events(masks) for masks in videos]
    if not found:
        raise ValueError("no video")
    objects = sum(f[2] for f in found)
    return {
        "videos": len(found),
        "leave_share": sum(f[0] for f in found) / len(found),
        "enter_share": sum(f[1] for f in found) / max(objects, 1),
    }
