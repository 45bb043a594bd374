"""Temporal stability T of the DAVIS 2016 benchmark.

F. Perazzi, J. Pont-Tuset, B. McWilliams, L. Van Gool, M. Gross, A. Sorkine-Hornung,
"A Benchmark Dataset and Evaluation Methodology for Video Object Segmentation", CVPR 2016.

T measures how much the contour of an object's mask deforms between consecutive frames: the
longest contour of each mask is described with shape contexts (Belongie et al., PAMI 2002), the
two contours are matched with a cyclic monotone (time-warping) alignment of the chi-square
descriptor costs, and T is the mean cost of the matched point pairs. Lower is better.

This re-implements the procedure of the DAVIS 2016 toolkit (fperazzi/davis) in vectorised
NumPy/OpenCV. Known deviations: contours come from ``cv2.findContours`` +
``cv2.approxPolyDP`` instead of the toolkit's own polygon extraction; ties between equal-cost
matching paths may resolve differently; the per-frame array has length T (see
:func:`temporal_stability`).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["t_stability", "temporal_stability", "t_mean"]

_POLY_TOL = 3.0  # polygon approximation tolerance (px) of the toolkit
_UPSAMPLE_STEP = 3.0  # max spacing (px) between consecutive contour points after upsampling
_N_THETA = 12  # shape-context angle bins
_N_R = 5  # shape-context log-radius bins
_R_EDGES = np.logspace(np.log10(1.0 / 8.0), np.log10(2.0), _N_R)
_EPS = 2.2204e-16  # MATLAB's eps, as in the toolkit's chi-square cost
_MAGIC = 5.0  # the toolkit's scale factor for per-frame T
_CHUNK = 1 << 18  # elements per temporary block of the chi-square cost (2 MiB of float64)


def _longest_contour(mask: np.ndarray) -> np.ndarray | None:
    """Vertices [N, 2] (x, y) float64 of the polygon with most points, None if mask is empty."""
    img = np.ascontiguousarray(np.asarray(mask) != 0, dtype=np.uint8)
    contours, _ = cv2.findContours(img, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    polys = [cv2.approxPolyDP(c, _POLY_TOL, closed=True) for c in contours]
    # argmax keeps the first of equally long polygons, like the toolkit's get_longest_cont.
    longest = polys[int(np.argmax([len(p) for p in polys]))]
    return longest.reshape(-1, 2).astype(np.float64)


def _upsample_contour(poly: np.ndarray) -> np.ndarray:
    """Insert points on the closed polygon so consecutive points are <= 3 px apart."""
    seg = np.roll(poly, -1, axis=0) - poly  # includes the closing segment back to vertex 0
    length = np.sqrt(np.sum(seg**2, axis=1))
    # A segment of length L > 3 is split into ceil(L / 3) equal parts (ceil(L/3) - 1 new points).
    parts = np.maximum(np.ceil(length / _UPSAMPLE_STEP), 1).astype(np.int64)
    seg_id = np.repeat(np.arange(len(poly)), parts)
    step = np.arange(parts.sum()) - np.repeat(np.cumsum(parts) - parts, parts)
    frac = step / parts[seg_id]
    return poly[seg_id] + seg[seg_id] * frac[:, None]


def _shape_context(points: np.ndarray) -> np.ndarray:
    """Shape-context histograms [N, 60] (index r_bin * 12 + theta_bin) of every point."""
    n = len(points)
    x, y = points[:, 0], points[:, 1]
    dx = x[None, :] - x[:, None]  # [i, j] = point j - point i
    dy = y[None, :] - y[:, None]
    dist = np.sqrt(dx**2 + dy**2)
    mean_dist = dist.mean()  # over the full matrix, zero diagonal included (toolkit)
    if mean_dist == 0:
        # All points coincide (a 1-pixel mask): the toolkit divides 0/0 and counts nothing.
        return np.zeros((n, _N_THETA * _N_R), dtype=np.int64)
    # r_q = number of edges strictly above r_n (5 = innermost ring, 0 = too far, dropped).
    r_q = _N_R - np.searchsorted(_R_EDGES, dist / mean_dist, side="right")
    theta = np.arctan2(dy, dx)
    two_pi = 2 * np.pi
    theta = np.fmod(np.fmod(theta, two_pi) + two_pi, two_pi)  # [0, 2pi) as in the toolkit
    # The clip only guards against a rounding to exactly 12 for angles a hair below 2pi.
    t_bin = np.minimum(np.floor(theta / (two_pi / _N_THETA)).astype(np.int64), _N_THETA - 1)
    keep = r_q > 0  # the point itself (r = 0, theta = 0) is kept: the toolkit counts it in (0, 4)
    bins = (r_q - 1) * _N_THETA + t_bin + np.arange(n)[:, None] * (_N_THETA * _N_R)
    hist = np.bincount(bins[keep], minlength=n * _N_THETA * _N_R)
    return hist.reshape(n, _N_THETA * _N_R)


def _chi2_cost(h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
    """Chi-square cost [N1, N2] between the normalised histograms of two point sets."""
    a = h1 / (h1.sum(axis=1, keepdims=True) + _EPS)
    b = h2 / (h2.sum(axis=1, keepdims=True) + _EPS)
    out = np.empty((len(a), len(b)))
    rows = max(1, _CHUNK // max(1, b.size))  # cache-sized [rows, N2, 60] temporaries
    for s in range(0, len(a), rows):
        x = a[s : s + rows, None, :]
        num = x - b
        np.square(num, out=num)
        den = x + b
        den += _EPS
        num /= den
        out[s : s + rows] = num.sum(axis=2)
    out *= 0.5
    return out


def _monotone_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cheapest monotone path (0, 0) -> (n1-1, n2-1), steps (1,0)/(0,1)/(1,1); cells paid on entry.

    Equivalent to the toolkit's Dijkstra on the grid graph (ties aside). Solved as a DP over
    anti-diagonals, whose cells are independent: stored skewed (row d = i + j) each diagonal is
    one slice update. Returns the row and column indices of the path cells, start to end.
    """
    n1, n2 = cost.shape
    n_diag = n1 + n2 - 1
    ii, jj = np.indices((n1, n2))
    # Skewed layout with one row/column of inf padding: cell (i, j) lives at [i + j + 1, i + 1].
    skew_cost = np.zeros((n_diag + 1, n1 + 1))
    skew_cost[ii + jj + 1, ii + 1] = cost
    acc = np.full((n_diag + 1, n1 + 1), np.inf)
    acc[1, 1] = cost[0, 0]
    for d in range(2, n_diag + 1):  # padded diagonal index: d = i + j + 1
        lo, hi = max(1, d - n2 + 1), min(d, n1) + 1  # padded columns i + 1 on this diagonal
        best = np.minimum(acc[d - 2, lo - 1 : hi - 1], acc[d - 1, lo - 1 : hi - 1])
        np.minimum(best, acc[d - 1, lo:hi], out=best)
        acc[d, lo:hi] = skew_cost[d, lo:hi] + best
    return _backtrack(acc, n1, n2)


def _backtrack(acc: np.ndarray, n1: int, n2: int) -> tuple[np.ndarray, np.ndarray]:
    """Walk back from the end cell, re-taking the forward argmin (diagonal, up, left on ties)."""
    i, j = n1 - 1, n2 - 1
    path = [(i, j)]
    while i or j:  # at most n1 + n2 steps: cheap even in Python
        d = i + j + 1
        # Predecessors (i-1, j-1), (i-1, j), (i, j-1); the inf padding rules out the invalid ones.
        cand = (acc[d - 2, i], acc[d - 1, i], acc[d - 1, i + 1])
        k = min(range(3), key=cand.__getitem__)
        i, j = i - (k < 2), j - (k != 1)
        path.append((i, j))
    ii, jj = np.asarray(path[::-1]).T
    return ii, jj


def _cheapest_per_key(key: np.ndarray, pair_cost: np.ndarray) -> np.ndarray:
    """Indices of the cheapest pair for each distinct key (first one on ties), keys ascending."""
    order = np.lexsort((pair_cost, key))  # stable: equal costs keep their order along the path
    _, first = np.unique(key[order], return_index=True)
    return order[first]


def _match_cost(cost: np.ndarray) -> float:
    """Mean cost of the bijective cyclic monotone matching of two closed contours."""
    n1, n2 = cost.shape
    ii, jj = _monotone_path(cost)
    # Contours are cyclic: restart the alignment right after the best-matched cell of the
    # 0-0 alignment, so that cell becomes the end anchor of the second pass.
    k = int(np.argmin(cost[ii, jj]))
    sx, sy = int(ii[k]) + 1, int(jj[k]) + 1
    ii, jj = _monotone_path(np.roll(cost, (-sx, -sy), axis=(0, 1)))
    ii, jj = (ii + sx) % n1, (jj + sy) % n2
    # Keep one pair per point of A, then one per point of B, the cheapest each time.
    keep = _cheapest_per_key(ii, cost[ii, jj])
    ii, jj = ii[keep], jj[keep]
    keep = _cheapest_per_key(jj, cost[ii, jj])
    return float(cost[ii[keep], jj[keep]].mean())


def _descriptor(mask: np.ndarray) -> np.ndarray | None:
    """Shape contexts of the upsampled longest contour of a mask, None if it is empty."""
    poly = _longest_contour(mask)
    return None if poly is None else _shape_context(_upsample_contour(poly))


def _t_from_descriptors(h1: np.ndarray | None, h2: np.ndarray | None) -> float:
    if h1 is None or h2 is None:
        return float("nan")
    return _match_cost(_chi2_cost(h1, h2))


def t_stability(mask_a: np.ndarray, mask_b: np.ndarray) -> float:
    """Temporal (in)stability between mask A (frame t-1) and mask B (frame t), [H, W] each.

    Mean chi-square shape-context cost of the matched contour points, not scaled by 5;
    NaN if either mask is empty.
    """
    return _t_from_descriptors(_descriptor(mask_a), _descriptor(mask_b))


def temporal_stability(masks: np.ndarray, drop_first_last: bool = True) -> np.ndarray:
    """Per-frame T [T] of one object's predicted masks [T, H, W], already multiplied by 5.0.

    ``out[t] = 5 * t_stability(masks[t-1], masks[t])``, indexed by the later frame of the pair,
    NaN where undefined (an empty mask) or not evaluated. With ``drop_first_last`` only frames
    1..T-2 are used, as in the DAVIS 2016 toolkit: ``out[t]`` is set for t = 2..T-2 and
    ``out[0]``, ``out[1]``, ``out[T-1]`` are NaN. Without it, t = 1..T-1 are set.

    The toolkit returns the same values as ``[nan] + [f(s[k], s[k+1]) for k] + [nan]`` over the
    inner frames ``s = masks[1:-1]``, an array of length T-1; the extra leading NaN here gives
    length T, aligned with the per-frame J and F arrays. NaN padding leaves the mean unchanged.
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be [T, H, W], got shape {masks.shape}")
    n = masks.shape[0]
    out = np.full(n, np.nan)
    lo, hi = (1, n - 1) if drop_first_last else (0, n)  # frames used: lo .. hi-1
    prev = None
    for t in range(lo, hi):
        # Each frame's descriptor is computed once and reused as the next pair's frame t-1.
        cur = _descriptor(masks[t])
        if t > lo:
            out[t] = _MAGIC * _t_from_descriptors(prev, cur)
        prev = cur
    return out


def t_mean(per_frame: np.ndarray) -> float:
    """Mean of the per-frame T values ignoring NaN; NaN (without a warning) if none is defined."""
    values = np.asarray(per_frame, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")
