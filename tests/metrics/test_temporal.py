"""Tests of the DAVIS 2016 temporal stability T (vos_jax.metrics.temporal).

The 2017 toolkit has no T, so the implementation is checked against an independent brute-force
reference written below with plain Python loops (float64), and on constructed cases.
"""

from __future__ import annotations

import math
import warnings

import cv2
import numpy as np
import pytest

from vos_jax.metrics import temporal
from vos_jax.metrics.temporal import t_mean, t_stability, temporal_stability

# --------------------------------------------------------------------------------------------
# Brute-force reference (loops only; the spec of the DAVIS 2016 toolkit, step by step).
# --------------------------------------------------------------------------------------------

REF_EDGES = [0.125, 0.25, 0.5, 1.0, 2.0]  # logspace(log10(1/8), log10(2), 5)


def ref_upsample(poly):
    """Closed polygon; a segment of length L > 3 gets ceil(L/3) - 1 equally spaced points."""
    out = []
    n = len(poly)
    for k in range(n):
        x0, y0 = poly[k]
        x1, y1 = poly[(k + 1) % n]
        length = math.sqrt((x1 - x0) ** 2 + (y1 - y0) ** 2)
        parts = math.ceil(length / 3.0) if length > 3.0 else 1
        for s in range(parts):
            out.append((x0 + (x1 - x0) * (s / parts), y0 + (y1 - y0) * (s / parts)))
    return np.array(out, dtype=np.float64)


def ref_shape_context(points):
    n = len(points)
    dist = [[0.0] * n for _ in range(n)]
    total = 0.0
    for i in range(n):
        for j in range(n):
            dx = points[j][0] - points[i][0]
            dy = points[j][1] - points[i][1]
            dist[i][j] = math.sqrt(dx * dx + dy * dy)
            total += dist[i][j]
    mean_dist = total / (n * n)
    hist = np.zeros((n, 60), dtype=np.int64)
    for i in range(n):
        for j in range(n):
            r_n = dist[i][j] / mean_dist
            r_q = sum(1 for edge in REF_EDGES if r_n < edge)
            if r_q == 0:
                continue
            theta = math.atan2(points[j][1] - points[i][1], points[j][0] - points[i][0])
            theta = math.fmod(math.fmod(theta, 2 * math.pi) + 2 * math.pi, 2 * math.pi)
            t_bin = math.floor(theta / (2 * math.pi / 12))
            hist[i, (r_q - 1) * 12 + t_bin] += 1
    return hist


def ref_chi2(h1, h2):
    eps = 2.2204e-16
    cost = np.zeros((len(h1), len(h2)))
    for i in range(len(h1)):
        s1 = sum(int(v) for v in h1[i]) + eps
        for j in range(len(h2)):
            s2 = sum(int(v) for v in h2[j]) + eps
            acc = 0.0
            for k in range(h1.shape[1]):
                a, b = h1[i, k] / s1, h2[j, k] / s2
                acc += (a - b) ** 2 / (a + b + eps)
            cost[i, j] = 0.5 * acc
    return cost


def ref_dp(cost):
    """Cheapest monotone path by a plain double loop; returns (total cost, path)."""
    n1, n2 = cost.shape
    acc = [[math.inf] * n2 for _ in range(n1)]
    for i in range(n1):
        for j in range(n2):
            if i == 0 and j == 0:
                acc[i][j] = float(cost[0, 0])
                continue
            best = math.inf
            for pi, pj in ((i - 1, j - 1), (i - 1, j), (i, j - 1)):  # preference on ties
                if pi >= 0 and pj >= 0 and acc[pi][pj] < best:
                    best = acc[pi][pj]
            acc[i][j] = float(cost[i, j]) + best
    i, j = n1 - 1, n2 - 1
    path = [(i, j)]
    while (i, j) != (0, 0):
        options = [(p, q) for p, q in ((i - 1, j - 1), (i - 1, j), (i, j - 1)) if p >= 0 and q >= 0]
        i, j = min(options, key=lambda pq: acc[pq[0]][pq[1]])  # first minimum wins
        path.append((i, j))
    return acc[n1 - 1][n2 - 1], path[::-1]


def ref_keep_cheapest(pairs, cost, axis):
    kept = []
    for key in sorted({p[axis] for p in pairs}):
        group = [p for p in pairs if p[axis] == key]
        kept.append(min(group, key=lambda p: cost[p[0], p[1]]))  # first on ties
    return kept


def ref_match_cost(cost):
    n1, n2 = cost.shape
    _, path = ref_dp(cost)
    sx, sy = min(path, key=lambda p: cost[p[0], p[1]])
    rolled = np.zeros_like(cost)
    for i in range(n1):
        for j in range(n2):
            rolled[i, j] = cost[(i + sx + 1) % n1, (j + sy + 1) % n2]
    _, path = ref_dp(rolled)
    pairs = [((i + sx + 1) % n1, (j + sy + 1) % n2) for i, j in path]
    pairs = ref_keep_cheapest(ref_keep_cheapest(pairs, cost, 0), cost, 1)
    return sum(cost[i, j] for i, j in pairs) / len(pairs)


def ref_t_stability(mask_a, mask_b):
    # Contour extraction is specified as cv2.findContours + approxPolyDP: shared, not re-derived.
    polys = [temporal._longest_contour(m) for m in (mask_a, mask_b)]
    if polys[0] is None or polys[1] is None:
        return math.nan
    h1, h2 = (ref_shape_context(ref_upsample(p)) for p in polys)
    return ref_match_cost(ref_chi2(h1, h2))


# --------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------


def random_blob(rng, size=48, n_vertices=9):
    """A random star-shaped polygon filled on a size x size canvas."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, n_vertices))
    radii = rng.uniform(0.15 * size, 0.42 * size, n_vertices)
    c = size / 2
    pts = np.stack([c + radii * np.cos(angles), c + radii * np.sin(angles)], axis=1)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask.astype(bool)


def ellipse(shape, center, axes, angle=0.0):
    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(mask, center, axes, angle, 0, 360, 1, -1)
    return mask.astype(bool)


def star(shape, center, r_in, r_out, n_tips=5):
    angles = np.arange(2 * n_tips) * np.pi / n_tips
    radii = np.where(np.arange(2 * n_tips) % 2 == 0, r_out, r_in)
    pts = np.stack([center[0] + radii * np.cos(angles), center[1] + radii * np.sin(angles)], 1)
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask.astype(bool)


@pytest.fixture(scope="module")
def blob_pairs():
    rng = np.random.default_rng(2016)
    return [(random_blob(rng), random_blob(rng)) for _ in range(4)]


# --------------------------------------------------------------------------------------------
# Components against the reference
# --------------------------------------------------------------------------------------------


def test_upsample_matches_reference_and_spacing():
    rng = np.random.default_rng(0)
    for _ in range(5):
        poly = rng.uniform(0, 60, size=(int(rng.integers(1, 12)), 2)).round()
        got = temporal._upsample_contour(poly)
        np.testing.assert_allclose(got, ref_upsample(poly), rtol=0, atol=1e-9)
        closed = np.vstack([got, got[:1]])
        assert np.max(np.linalg.norm(np.diff(closed, axis=0), axis=1)) <= 3.0 + 1e-9
        assert all((got == v).all(axis=1).any() for v in poly)  # vertices are kept


def test_upsample_segment_counts():
    # A 3 px segment gets no new point; 3.5 px gets 1; 9 px gets 2 (ceil(L/3) - 1).
    assert len(temporal._upsample_contour(np.array([[0.0, 0.0], [3.0, 0.0]]))) == 2
    assert len(temporal._upsample_contour(np.array([[0.0, 0.0], [3.5, 0.0]]))) == 4
    assert len(temporal._upsample_contour(np.array([[0.0, 0.0], [9.0, 0.0]]))) == 6


def test_shape_context_matches_reference(blob_pairs):
    for mask, _ in blob_pairs:
        points = temporal._upsample_contour(temporal._longest_contour(mask))
        got = temporal._shape_context(points)
        assert got.shape == (len(points), 60)
        np.testing.assert_array_equal(got, ref_shape_context(points))
        # Toolkit quirk: every point counts itself in (angle bin 0, radius bin 4) -> index 48.
        assert (got[:, 4 * 12 + 0] >= 1).all()


def test_chi2_matches_reference(blob_pairs):
    for mask_a, mask_b in blob_pairs[:2]:
        h1, h2 = (temporal._descriptor(m) for m in (mask_a, mask_b))
        np.testing.assert_allclose(temporal._chi2_cost(h1, h2), ref_chi2(h1, h2), atol=1e-9)
        assert np.allclose(np.diag(temporal._chi2_cost(h1, h1)), 0.0)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (6, 1), (2, 2), (9, 13), (31, 24)])
def test_monotone_path_is_optimal(shape):
    rng = np.random.default_rng(sum(shape))
    cost = rng.random(shape)
    cost[rng.random(shape) < 0.2] = 0.0  # zero-cost cells, which a sparse graph would drop
    ii, jj = temporal._monotone_path(cost)
    steps = np.stack([np.diff(ii), np.diff(jj)], axis=1)
    assert (ii[0], jj[0]) == (0, 0) and (ii[-1], jj[-1]) == (shape[0] - 1, shape[1] - 1)
    assert {tuple(s) for s in steps} <= {(1, 0), (0, 1), (1, 1)}
    best, ref_path = ref_dp(cost)
    assert abs(cost[ii, jj].sum() - best) <= 1e-9
    assert list(zip(ii.tolist(), jj.tolist(), strict=True)) == ref_path  # same tie rule


def test_match_cost_matches_reference():
    rng = np.random.default_rng(7)
    for shape in [(5, 8), (17, 12), (30, 30)]:
        cost = rng.random(shape)
        assert abs(temporal._match_cost(cost) - ref_match_cost(cost)) <= 1e-9


def test_t_stability_matches_reference_pipeline(blob_pairs):
    for mask_a, mask_b in blob_pairs:
        got, want = t_stability(mask_a, mask_b), ref_t_stability(mask_a, mask_b)
        assert got > 0
        assert abs(got - want) <= 1e-9


# --------------------------------------------------------------------------------------------
# Constructed cases
# --------------------------------------------------------------------------------------------


def test_longest_contour_picks_polygon_with_most_points():
    mask = np.zeros((80, 120), bool)
    mask[10:70, 10:70] = ellipse((60, 60), (30, 30), (27, 27))  # big disk with a hole
    mask[30:50, 30:50] = False
    mask[5:9, 100:104] = True  # small square elsewhere
    poly = temporal._longest_contour(mask)
    assert poly.shape[1] == 2 and len(poly) > 4
    x, y = poly[:, 0], poly[:, 1]  # (x, y) = (column, row)
    assert x.min() < 20 and x.max() > 60 and y.min() < 20 and y.max() > 60
    assert temporal._longest_contour(np.zeros((5, 5), bool)) is None


def test_identical_masks_give_exactly_zero(blob_pairs):
    disk = ellipse((100, 120), (60, 50), (30, 30))
    assert t_stability(disk, disk) == 0.0
    for mask, _ in blob_pairs:
        assert t_stability(mask, mask.copy()) == 0.0


def test_translation_is_near_zero():
    shape = (200, 260)
    a = star(shape, (100, 100), 25, 60)
    b = star(shape, (117, 93), 25, 60)
    assert t_stability(a, b) < 1e-3
    c = ellipse(shape, (110, 100), (70, 35), 20)
    d = ellipse(shape, (140, 110), (70, 35), 20)
    assert t_stability(c, d) < 1e-3


def test_deformation_costs_more_than_translation_and_scaling():
    shape = (240, 320)
    disk = ellipse(shape, (150, 120), (60, 60))
    moved = ellipse(shape, (165, 110), (60, 60))
    bigger = ellipse(shape, (150, 120), (90, 90))
    thin = ellipse(shape, (150, 120), (110, 18))
    spiky = star(shape, (150, 120), 30, 90)
    t_move, t_scale = t_stability(disk, moved), t_stability(disk, bigger)
    t_thin, t_star = t_stability(disk, thin), t_stability(disk, spiky)
    assert t_move < 0.01 and t_scale < 0.02  # shape context is translation/scale invariant
    for t_deform in (t_thin, t_star):
        assert t_deform > 0.1
        assert t_deform > 5 * max(t_move, t_scale)


def test_empty_mask_gives_nan():
    disk = ellipse((50, 50), (25, 25), (10, 10))
    empty = np.zeros((50, 50), bool)
    assert math.isnan(t_stability(disk, empty))
    assert math.isnan(t_stability(empty, disk))
    assert math.isnan(t_stability(empty, empty))


def test_single_pixel_and_tiny_masks_are_finite():
    a = np.zeros((20, 20), bool)
    a[5, 5] = True
    b = np.zeros((20, 20), bool)
    b[8:10, 8:11] = True
    assert t_stability(a, a) == 0.0
    assert np.isfinite(t_stability(a, b))


def moving_sequence(n_frames, shape=(90, 120)):
    """An ellipse that moves and stretches; frame 3 is empty when n_frames > 4."""
    frames = [
        ellipse(shape, (40 + 4 * t, 45), (20 + 3 * t, 18 - t), 10 * t) for t in range(n_frames)
    ]
    masks = np.stack(frames)
    if n_frames > 4:
        masks[3] = False
    return masks


def test_temporal_stability_layout_drop_first_last():
    masks = moving_sequence(8)
    out = temporal_stability(masks)
    assert out.shape == (8,)
    # Frames 1..6 are used; out[t] compares frames t-1 and t, for t = 2..6.
    assert np.isnan(out[[0, 1, 7]]).all()
    for t in (2, 5, 6):
        assert out[t] == pytest.approx(5.0 * t_stability(masks[t - 1], masks[t]), abs=1e-12)
        assert out[t] > 0
    assert np.isnan(out[3]) and np.isnan(out[4])  # pairs touching the empty frame 3
    # First and last frames are never looked at.
    other = masks.copy()
    other[0] = other[-1] = False
    np.testing.assert_array_equal(temporal_stability(other), out)


def test_temporal_stability_matches_toolkit_values():
    # The toolkit: s = masks[1:-1]; X = [nan] + [5 f(s[k], s[k+1])] + [nan] (length T-1).
    masks = moving_sequence(6)
    s = masks[1:-1]
    toolkit = [np.nan] + [5.0 * t_stability(s[k], s[k + 1]) for k in range(len(s) - 1)] + [np.nan]
    out = temporal_stability(masks)
    np.testing.assert_allclose(out[1:], toolkit, rtol=0, atol=1e-12)  # shifted by one NaN
    assert t_mean(out) == pytest.approx(np.nanmean(toolkit), abs=1e-12)


def test_temporal_stability_without_dropping():
    masks = moving_sequence(5)
    out = temporal_stability(masks, drop_first_last=False)
    assert out.shape == (5,) and np.isnan(out[0])
    for t in range(1, 5):
        want = 5.0 * t_stability(masks[t - 1], masks[t])
        np.testing.assert_allclose(out[t], want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_frames", [0, 1, 2, 3])
def test_temporal_stability_short_sequences_are_nan(n_frames):
    out = temporal_stability(moving_sequence(n_frames) if n_frames else np.zeros((0, 4, 4)))
    assert out.shape == (n_frames,) and np.isnan(out).all()


def test_temporal_stability_rejects_bad_shape():
    with pytest.raises(ValueError):
        temporal_stability(np.zeros((4, 4), bool))


def test_t_mean_ignores_nan_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert t_mean(np.array([np.nan, 0.2, np.nan, 0.4, np.nan])) == pytest.approx(0.3)
        assert math.isnan(t_mean(np.full(4, np.nan)))
        assert math.isnan(t_mean(np.array([])))
        assert isinstance(t_mean(np.array([1.0])), float)


def test_t_stability_on_davis_sized_masks():
    shape = (480, 854)
    a = ellipse(shape, (427, 240), (300, 150))  # ~1500 px perimeter -> ~500 contour points
    b = ellipse(shape, (437, 246), (290, 160), 5)
    value = t_stability(a, b)  # ~0.1 s on one core (measured, not asserted: no timed tests)
    assert 0 < value < 0.2
    assert len(temporal._descriptor(a)) > 400
