"""DAVIS J, F and statistics: parity with the official toolkit and a brute-force reference."""

import json
import math

import numpy as np
import pytest
from scipy import ndimage

from benchmarks.davis_mini import build_davis_mini_case
from tests.shared_data import DAVIS_MINI, shared_path
from vos_jax.io.masks import read_mask
from vos_jax.metrics import davis, evaluation

# ---------------------------------------------------------------- brute-force float64 reference


def ref_boundary(seg):
    """Boundary as defined by the toolkit, pixel by pixel: differs from an existing E/S/SE pixel."""
    h, w = seg.shape
    out = np.zeros_like(seg, bool)
    for y in range(h):
        for x in range(w):
            for dy, dx in ((0, 1), (1, 0), (1, 1)):
                if y + dy < h and x + dx < w and seg[y, x] != seg[y + dy, x + dx]:
                    out[y, x] = True
    return out


def ref_scores(res, gt, void=None):
    """J and F of one pair of [H, W] masks, written from the definitions with scipy morphology."""
    res, gt = res.astype(bool), gt.astype(bool)
    keep = np.ones_like(res) if void is None else ~void
    union = np.sum((res | gt) & keep)
    j = 1.0 if union == 0 else float(np.sum(res & gt & keep)) / float(union)
    radius = math.ceil(0.008 * math.sqrt(res.shape[0] ** 2 + res.shape[1] ** 2))
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disk = xx**2 + yy**2 <= radius**2
    b_res, b_gt = ref_boundary(res & keep), ref_boundary(gt & keep)
    n_res, n_gt = b_res.sum(), b_gt.sum()
    if n_res == 0 and n_gt == 0:
        return j, 1.0
    if n_res == 0 or n_gt == 0:
        return j, 0.0
    p = np.sum(b_res & ndimage.binary_dilation(b_gt, disk)) / n_res
    r = np.sum(b_gt & ndimage.binary_dilation(b_res, disk)) / n_gt
    return j, 0.0 if p + r == 0 else 2 * p * r / (p + r)


def ref_statistics(values):
    """The toolkit's db_statistics, including its uint8 bin edges (with the numpy 1 promotion of
    `edge + 1` it was written for: under numpy 2 a uint8 edge of 255 + 1 would wrap to 0)."""
    values = np.asarray(values, np.float64)
    edges = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.uint8).astype(int)
    bins = [values[edges[i] : edges[i + 1] + 1] for i in range(4)]
    return values.mean(), np.mean(values > 0.5), bins[0].mean() - bins[3].mean()


def random_blobs(rng, shape, count):
    """An id map of `count` random overlapping ellipses (later ones on top), ids 1..count."""
    h, w = shape
    ids = np.zeros(shape, np.uint8)
    yy, xx = np.mgrid[:h, :w]
    for k in range(1, count + 1):
        cy, cx = rng.uniform(-0.1, 1.1) * h, rng.uniform(-0.1, 1.1) * w
        ry, rx = rng.uniform(0.05, 0.5) * h, rng.uniform(0.05, 0.5) * w
        ids[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = k
    return ids


# ---------------------------------------------------------------- per-frame measures


@pytest.mark.parametrize("seed", range(6))
def test_frame_scores_match_reference_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(20, 70)), int(rng.integers(20, 90)))
    res, gt = random_blobs(rng, shape, 4), random_blobs(rng, shape, 3)
    void = rng.random(shape) < 0.05 if seed % 2 else np.zeros(shape, bool)
    # Void is excluded by zeroing it in both maps (see frame_scores); the reference takes it apart.
    j, f = davis.frame_scores(np.where(void, 0, res), np.where(void, 0, gt), 4, 3)
    assert j.shape == f.shape == (4, 3)
    for p in range(4):
        for g in range(3):
            ref_j, ref_f = ref_scores(res == p + 1, gt == g + 1, void)
            assert j[p, g] == pytest.approx(ref_j, abs=1e-12)
            assert f[p, g] == pytest.approx(ref_f, abs=1e-12)


def test_edge_cases_of_j_and_f():
    empty = np.zeros((30, 40), np.uint8)
    square = empty.copy()
    square[5:15, 5:20] = 1

    def one_pair(result, target):
        j, f = davis.frame_scores(result, target, 1, 1)
        return j[0, 0], f[0, 0]

    assert one_pair(empty, empty) == (1.0, 1.0)  # both empty: perfect
    assert one_pair(square, empty) == (0.0, 0.0)  # one empty
    assert one_pair(empty, square) == (0.0, 0.0)
    assert one_pair(square, square) == (1.0, 1.0)
    # A 1 px shift: 140 of 160 pixels shared, every boundary pixel within the 1 px tolerance.
    assert one_pair(square, np.roll(square, 1, axis=1)) == (140 / 160, 1.0)
    j, f = davis.frame_scores(empty, empty, 0, 2)  # no results at all: an empty [0, 2] table
    assert j.shape == f.shape == (0, 2)


def test_boundary_map_edge_rules():
    seg = np.zeros((5, 6), bool)
    seg[2:, 3:] = True  # touches the bottom and right edges
    np.testing.assert_array_equal(davis.boundary_map(seg), ref_boundary(seg))
    full = np.ones((4, 4), bool)
    assert not davis.boundary_map(full).any()  # the frame edge is not a boundary


def test_boundary_radius_from_the_diagonal():
    assert davis.boundary_radius(480, 854) == 8
    assert davis.boundary_radius(1080, 1920) == 18
    assert davis.boundary_radius(10, 10) == 1


def test_support_crop_gives_the_full_frame_result():
    rng = np.random.default_rng(7)
    res, gt = random_blobs(rng, (60, 80), 3), random_blobs(rng, (60, 80), 2)
    res[:20], gt[:20] = 0, 0  # leave an empty margin so that the crop is smaller than the frame
    j, f = davis.sequence_scores(res[None], gt[None], 3, 2)
    full_j, full_f = davis.frame_scores(res, gt, 3, 2)
    np.testing.assert_array_equal(j[..., 0], full_j)
    np.testing.assert_array_equal(f[..., 0], full_f)


# ---------------------------------------------------------------- statistics


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 7, 10, 48, 81, 199, 256])
def test_statistics_match_toolkit_binning(length):
    values = np.random.default_rng(length).random(length)
    np.testing.assert_allclose(davis.statistics(values), ref_statistics(values), atol=1e-15)


def test_statistics_beyond_256_frames_use_true_quarters():
    values = np.r_[np.ones(100), np.zeros(200)]  # 300 frames; uint8 edges would wrap here
    mean, recall, decay = davis.statistics(values)
    assert mean == pytest.approx(1 / 3) and recall == pytest.approx(1 / 3)
    assert decay == pytest.approx(1.0)  # first quarter all ones, last quarter all zeros


def test_statistics_of_no_frames_are_nan():
    assert all(math.isnan(v) for v in davis.statistics(np.zeros(0)))


# ---------------------------------------------------------------- protocols


def test_semisupervised_pads_missing_ids_and_rejects_extra_ones():
    gt = np.zeros((5, 20, 20), np.uint8)
    gt[:, 2:8, 2:8], gt[:, 10:18, 10:18] = 1, 2
    res = gt[1:-1].copy()
    res[res == 2] = 0  # object 2 never predicted: scored as an empty mask
    out = davis.evaluate_semisupervised(gt, res)
    np.testing.assert_array_equal(out.j, [[1, 1, 1], [0, 0, 0]])
    with pytest.raises(davis.ProtocolError, match="higher than the number of objects"):
        davis.evaluate_semisupervised(gt, np.where(res == 1, 3, res).astype(np.uint8))


def test_unsupervised_matches_permuted_proposals_and_limits_their_number():
    gt = np.zeros((4, 20, 30), np.uint8)
    gt[:, 2:8, 2:8], gt[:, 10:18, 10:25] = 1, 2
    res = np.select([gt == 1, gt == 2], [7, 3], 0).astype(np.uint8)
    out = davis.evaluate_unsupervised(gt, res)
    np.testing.assert_array_equal(out.result_ids, [3, 7])  # toolkit order: by proposal index
    assert np.all(out.j == 1) and np.all(out.f == 1)
    with pytest.raises(davis.ProtocolError, match="20 proposals"):
        davis.evaluate_unsupervised(gt, np.where(gt == 1, 21, gt).astype(np.uint8))


# ---------------------------------------------------------------- parity with the toolkit


@pytest.fixture(scope="module")
def official():
    return json.loads(shared_path("fixtures/davis_official_metrics.json").read_text())


@pytest.mark.parametrize("case", ["semi", "multi", "unsup"])
def test_parity_with_official_toolkit(case, official, tmp_path):
    expected = official[case]["per_object"]
    seqs = official[case]["sequences"]
    root, results = build_davis_mini_case(shared_path(DAVIS_MINI), case, seqs, tmp_path)
    task = "unsupervised" if case == "unsup" else "semi-supervised"
    objects = evaluation.evaluate(root, results, task=task, sequences=seqs, workers=2)
    assert sorted(o.name for o in objects) == sorted(expected)
    for obj in objects:
        for key, value in expected[obj.name].items():
            assert obj.stats[key] == pytest.approx(value, abs=1e-6), (obj.name, key)


def test_davis2016_grayscale_ground_truth_reads_as_one_object():
    mini = shared_path(DAVIS_MINI)
    gray_dir = mini / "davis2016-format/Annotations/480p/blackswan"
    palette_dir = mini / "DAVIS/Annotations/480p/blackswan"
    for gray_path in sorted(gray_dir.glob("*.png"))[:5]:
        gray = read_mask(gray_path, allow_grayscale=True)
        np.testing.assert_array_equal(gray, read_mask(palette_dir / gray_path.name))
