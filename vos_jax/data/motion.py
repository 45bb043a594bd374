"""How fast objects move in mask videos: the statistics that the synthetic "davis" preset matches
to real DAVIS ground truth (benchmarks/motion_stats.py measures both).

Per object and pair of consecutive frames where it is visible in both: the displacement of its
centroid relative to its size (sqrt of its area in the earlier frame), and the scale change
|log sqrt(area ratio)|. Reported as median and 90th percentile over all pairs.
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
