"""Tests for the host-side augmentations (vos_jax/data/augment.py) and thin-plate splines (tps.py).

`python -m tests.test_augment` prints the speed of the pipeline pieces (not asserted here).
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from scipy import ndimage

from tests.shared_data import DAVIS_MINI, shared_path
from vos_jax.data import augment as A
from vos_jax.data.tps import boundary_control_points, tps_apply, tps_fit, tps_warp, tps_warp_map
from vos_jax.io.masks import read_mask

PALETTE = np.random.default_rng(99).integers(0, 256, (256, 3), dtype=np.uint8)  # colour of id


def _scene(height=120, width=160, void=True):
    """A mask with an ellipse (id 1), a rectangle (id 2), a void ring around id 1, and a frame whose
    colour encodes the id (background gradient with R = 0, objects red / yellow textures)."""
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (width // 3, height // 2), (width // 8, height // 4), 0, 0, 360, 1, -1)
    cv2.rectangle(mask, (width * 3 // 5, height // 4), (width * 4 // 5, height * 3 // 4), 2, -1)
    if void:
        ring = cv2.dilate((mask == 1).view(np.uint8), np.ones((5, 5), np.uint8)) > 0
        mask[ring & (mask == 0)] = A.VOID
    rng = np.random.default_rng(123)
    yy, xx = np.mgrid[:height, :width]
    frame = np.stack([np.zeros_like(xx), 60 + 100 * xx // width, 100 + 100 * yy // height], -1)
    noise = rng.integers(-20, 20, (height, width, 3))
    frame = np.where((mask == 1)[..., None], np.array([220, 20, 20]) + noise, frame)
    frame = np.where((mask == 2)[..., None], np.array([210, 210, 20]) + noise, frame)
    return frame.astype(np.uint8), mask


def _iou(a, b):
    return np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1)


# ----------------------------------------------------------------------------- thin-plate spline


def test_tps_interpolates_control_points_exactly():
    rng = np.random.default_rng(0)
    for n in (5, 9):
        src = rng.integers(10, 90, (n, 2)).astype(np.float64)
        dst = src + rng.uniform(-8, 8, (n, 2))
        np.testing.assert_allclose(tps_apply(tps_fit(src, dst), src), dst, atol=1e-6)
        # The float32 backward map of a warp src -> dst sends each target pixel to its source.
        map_x, map_y = tps_warp_map(tps_fit(dst.round(), src), 100, 100)
        ix, iy = dst.round().astype(int).T
        np.testing.assert_allclose(np.stack([map_x[iy, ix], map_y[iy, ix]], 1), src, atol=1e-3)
        exact = tps_warp_map(tps_fit(dst, src), 100, 100)
        grid = np.stack(np.meshgrid(np.arange(100), np.arange(100)), -1)
        ref = tps_apply(tps_fit(dst, src), grid)  # float64
        np.testing.assert_allclose(np.stack(exact, -1), ref, atol=2e-3)


def test_tps_coarse_grid_map_is_close_to_exact():
    """The augmentations' setting (5 boundary points moved +-10%): the map evaluated every 4 px
    and upsampled stays within a fraction of a pixel of the exact one."""
    rng = np.random.default_rng(4)
    for _ in range(5):
        obj = np.zeros((120, 120), np.uint8)
        cv2.ellipse(obj, (60, 60), (30, 20), rng.uniform(0, 180), 0, 360, 1, -1)
        src, dst = boundary_control_points(obj, 5, 0.10, rng)
        coarse = tps_warp_map(tps_fit(dst, src), 120, 120, grid_step=4)
        exact = tps_warp_map(tps_fit(dst, src), 120, 120)
        assert max(np.abs(c - e).max() for c, e in zip(coarse, exact, strict=True)) < 0.3


def test_tps_identity_and_affine_reproduction():
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 60, (5, 2))
    map_x, map_y = tps_warp_map(tps_fit(pts, pts), 50, 70)
    yy, xx = np.mgrid[:50, :70]
    np.testing.assert_allclose(map_x, xx, atol=1e-3)
    np.testing.assert_allclose(map_y, yy, atol=1e-3)
    image = rng.integers(0, 255, (50, 70, 3), np.uint8)
    np.testing.assert_array_equal(tps_warp(image, pts, pts), image)
    # The spline has zero bending energy for an affine target: it is that affine map everywhere.
    mat = np.array([[1.1, 0.2], [-0.1, 0.9]])
    query = rng.uniform(-50, 150, (40, 2))
    got = tps_apply(tps_fit(pts, pts @ mat.T + [3.0, -2.0]), query)
    np.testing.assert_allclose(got, query @ mat.T + [3.0, -2.0], atol=1e-6)


def test_tps_warp_moves_content_from_src_to_dst():
    rng = np.random.default_rng(2)
    src = np.array([[20, 20], [80, 25], [50, 50], [25, 80], [75, 75]], np.float64)
    dst = src + rng.uniform(-6, 6, src.shape)
    marks = np.zeros((100, 100), np.uint8)
    for i, (x, y) in enumerate(src.astype(int), 1):
        marks[y - 1 : y + 2, x - 1 : x + 2] = i
    warped = tps_warp(marks, src, dst, cv2.INTER_NEAREST)
    assert set(np.unique(warped)) <= set(range(6))
    centroids = ndimage.center_of_mass(warped > 0, warped, range(1, 6))
    np.testing.assert_allclose(np.array(centroids)[:, ::-1], dst, atol=1.0)


# ----------------------------------------------------------------------------- clip augmentation


def _encoded_clip(t=3, height=100, width=120):
    """T different id maps and frames whose colour encodes the id. Ids 3, 7, 12 and a void band:
    interpolating between them (instead of nearest) would invent ids in between."""
    rng = np.random.default_rng(3)
    masks = np.zeros((t, height, width), np.uint8)
    for i in range(t):
        for k in (3, 7, 12):
            y, x = rng.integers(0, height - 30), rng.integers(0, width - 30)
            masks[i, y : y + 30, x : x + 30] = k
    masks[:, :, 58:62] = A.VOID
    return PALETTE[masks], masks


def test_random_scale_crop_shapes_alignment_and_ids():
    frames, masks = _encoded_clip()
    for seed in range(5):
        out_f, out_m = A.random_scale_crop(frames, masks, (64, 80), np.random.default_rng(seed))
        assert out_f.shape == (3, 64, 80, 3) and out_m.shape == (3, 64, 80)
        assert out_f.dtype == np.uint8 and out_m.dtype == np.uint8
        assert set(np.unique(out_m)) <= set(np.unique(masks))
        for f, m in zip(out_f, out_m, strict=True):
            # Away from id edges, each pixel's colour is its id's colour: frame and mask line up.
            keep = cv2.morphologyEx(m, cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8)) == 0
            keep[[0, -1]] = keep[:, [0, -1]] = False  # an edge just outside the crop blurs these
            assert keep.mean() > 0.4
            np.testing.assert_array_equal(f[keep], PALETTE[m[keep]])


def test_random_scale_crop_same_transform_for_all_frames():
    frames, masks = _encoded_clip(t=1)
    frames, masks = np.repeat(frames, 4, 0), np.repeat(masks, 4, 0)
    out_f, out_m = A.random_scale_crop(frames, masks, (50, 50), np.random.default_rng(0))
    assert all(np.array_equal(out_f[0], f) for f in out_f)
    assert all(np.array_equal(out_m[0], m) for m in out_m)


def test_random_scale_crop_respects_scale_range():
    frame = np.zeros((1, 100, 120, 3), np.uint8)
    mask = np.zeros((1, 100, 120), np.uint8)
    mask[0, 40:60, 50:70] = 1  # 20 x 20, in the centre: always fully inside the crop
    base = max(64 / 100, 64 / 120)
    ratios = []
    for seed in range(40):
        _, out = A.random_scale_crop(frame, mask, (64, 64), np.random.default_rng(seed))
        ratios.append(np.sqrt((out == 1).sum() / 400.0) / base)
    assert 1.0 - 0.08 < min(ratios) < 1.1 and 1.2 < max(ratios) < 1.3 + 0.08
    # A range below 1 pads with zeros.
    out_f, out_m = A.random_scale_crop(
        frame + 9, mask, (64, 64), np.random.default_rng(0), (0.5, 0.5)
    )
    assert (out_f == 0).any() and (out_f == 9).any() and (out_m[out_f[..., 0] == 0] == 0).all()


def test_random_flip_flips_frames_and_masks_together():
    frames, masks = _encoded_clip()
    f, m = A.random_flip(frames, masks, np.random.default_rng(0), p=1.0)
    np.testing.assert_array_equal(f, frames[:, :, ::-1])
    np.testing.assert_array_equal(m, masks[:, :, ::-1])
    f, m = A.random_flip(frames, masks, np.random.default_rng(0), p=0.0)
    np.testing.assert_array_equal(f, frames)
    flips = [
        not np.array_equal(A.random_flip(frames, masks, np.random.default_rng(s))[1], masks)
        for s in range(20)
    ]
    assert 0 < sum(flips) < 20


def test_photometric_jitter_same_for_all_frames_and_uint8():
    frame, _ = _scene()
    frames = np.stack([frame] * 3)
    out = A.photometric_jitter(frames, np.random.default_rng(0))
    assert out.dtype == np.uint8 and out.shape == frames.shape
    assert np.abs(out.astype(int) - frames).mean() > 2
    assert np.array_equal(out[0], out[1]) and np.array_equal(out[0], out[2])
    zero = A.photometric_jitter(frames, np.random.default_rng(0), 0, 0, 0, 0)
    np.testing.assert_array_equal(zero, frames)


def test_photometric_jitter_components_against_float64_reference():
    rng = np.random.default_rng(5)
    frames = rng.integers(30, 220, (2, 20, 30, 3), np.uint8)
    x = frames.astype(np.float64)
    # Brightness alone is one global gain.
    out = A.photometric_jitter(frames, np.random.default_rng(1), 0.3, 0, 0, 0).astype(np.float64)
    gain = (out * x).sum() / (x * x).sum()
    assert abs(gain - 1) > 1e-3 and np.abs(out - np.clip(np.round(gain * x), 0, 255)).max() <= 1
    # Hue alone keeps luma and keeps grays gray; saturation alone keeps luma too.
    luma = np.array([0.299, 0.587, 0.114])
    for args in ((0, 0, 0, 0.05), (0, 0, 0.5, 0)):
        out = A.photometric_jitter(frames, np.random.default_rng(2), *args).astype(np.float64)
        assert np.abs(out - x).mean() > 1
        unclipped = ((out > 0) & (out < 255)).all(-1)
        assert np.abs(out @ luma - x @ luma)[unclipped].max() <= 1.5 + 1e-9
    gray = np.repeat(frames[..., :1], 3, axis=-1)
    out = A.photometric_jitter(gray, np.random.default_rng(3), 0, 0, 0.5, 0.05).astype(int)
    assert np.abs(out - gray).max() <= 1


# ----------------------------------------------------------------------------- prior simulation


@pytest.mark.parametrize("mode", ["affine", "tps"])
def test_simulate_prior_overlaps_but_differs(mode):
    _, mask = _scene()
    for seed in range(8):
        prior = A.simulate_prior(mask, np.random.default_rng(seed), probs={mode: 1.0})
        assert set(np.unique(prior)) == {0, 1, 2}  # no void, no invented or absent ids
        for k in (1, 2):
            assert 0.4 < _iou(prior == k, mask == k) < 0.98


def test_simulate_prior_empty_mode_and_absent_objects():
    _, mask = _scene()
    assert not A.simulate_prior(mask, np.random.default_rng(0), probs={"empty": 1.0}).any()
    only_void = np.where(mask == 1, A.VOID, 0).astype(np.uint8)
    assert not A.simulate_prior(only_void, np.random.default_rng(0)).any()
    one = np.where(mask == 2, 2, 0).astype(np.uint8)
    assert set(np.unique(A.simulate_prior(one, np.random.default_rng(0)))) <= {0, 2}
    with pytest.raises(ValueError):
        A.simulate_prior(mask, np.random.default_rng(0), probs={"flip": 1.0})


def test_simulate_prior_modes_mix_with_default_probs():
    _, mask = _scene()
    modes = set()
    for seed in range(30):
        prior = A.simulate_prior(mask, np.random.default_rng(seed), dilate_radius=0)
        modes |= {"empty" if not (prior == k).any() else "warp" for k in (1, 2)}
    assert modes == {"empty", "warp"}


def test_simulate_prior_dilation_against_distance_reference():
    _, mask = _scene(void=False)
    identity = dict(probs={"affine": 1.0}, affine_scale=0, affine_shift=0, affine_rotate=0)
    undilated = A.simulate_prior(mask, np.random.default_rng(0), dilate_radius=0, **identity)
    np.testing.assert_array_equal(undilated, mask)
    prior = A.simulate_prior(mask, np.random.default_rng(0), dilate_radius=5, **identity)
    dist = ndimage.distance_transform_edt(mask == 0)  # float64 distance to the nearest object
    assert (prior[dist <= 4.5] > 0).all() and not prior[dist > 5.5].any()
    # Same draws, larger disk: the prior grows.
    for mode in ("affine", "tps"):
        small = A.simulate_prior(mask, np.random.default_rng(4), {mode: 1.0}, dilate_radius=0)
        big = A.simulate_prior(mask, np.random.default_rng(4), {mode: 1.0}, dilate_radius=5)
        assert (big[small > 0] > 0).all() and (big > 0).sum() > 1.2 * (small > 0).sum()


# ----------------------------------------------------------------------------- lucid dreaming

NO_LIGHT = dict(hsv_power=(1.0, 1.0), hsv_gain=(1.0, 1.0), hsv_offset=0.0)


def test_lucid_dream_ids_shapes_and_prior():
    frame, mask = _scene()
    for seed in range(6):
        out_f, out_m, prior = A.lucid_dream(frame, mask, np.random.default_rng(seed))
        assert out_f.shape == frame.shape and out_f.dtype == np.uint8
        assert out_m.shape == prior.shape == mask.shape
        assert set(np.unique(out_m)) == {0, 1, 2}  # void inpainted away, every object kept
        assert set(np.unique(prior)) <= {0, 1, 2}
        for k in (1, 2):
            assert 0.4 < _iou(prior == k, out_m == k) < 0.99
            # Rescale 0.85-1.15 (area 0.72-1.32) and a +-5% TPS; occlusion may hide some of it.
            assert 0.2 < (out_m == k).sum() / (mask == k).sum() < 1.6


def test_lucid_dream_pastes_object_pixels_and_inpaints_the_hole():
    frame, mask = _scene()
    holes = 0
    for seed in range(4):
        out_f, out_m, _ = A.lucid_dream(frame, mask, np.random.default_rng(seed), **NO_LIGHT)
        for k in (1, 2):
            src_mean = frame[mask == k].mean(0)
            inner = cv2.erode((out_m == k).view(np.uint8), np.ones((5, 5), np.uint8)) > 0
            np.testing.assert_allclose(out_f[inner].mean(0), src_mean, atol=6)
            # Where object k was and nothing was pasted, no object-like colour is left.
            hole = (mask == k) & (out_m == 0)
            if hole.sum() > 50:
                holes += 1
                dist = np.abs(out_f[hole].astype(float) - src_mean).sum(-1)
                assert (dist < 100).mean() < 0.01
    assert holes >= 4


def test_lucid_dream_illumination_keeps_object_colour_roughly():
    frame, mask = _scene()
    out_f, out_m, _ = A.lucid_dream(frame, mask, np.random.default_rng(7))
    for k in (1, 2):
        np.testing.assert_allclose(out_f[out_m == k].mean(0), frame[mask == k].mean(0), atol=45)


def test_hsv_illumination_against_float64_reference_and_keeps_hue():
    rng = np.random.default_rng(8)
    hsv = np.stack(
        [
            rng.uniform(0, 360, (40, 50)),
            rng.uniform(0.4, 1, (40, 50)),
            rng.uniform(0.4, 1, (40, 50)),
        ],
        -1,
    ).astype(np.float32)
    frame = np.round(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255).astype(np.uint8)
    ref_hsv = cv2.cvtColor(frame.astype(np.float32) / 255, cv2.COLOR_RGB2HSV).astype(np.float64)
    out = A.hsv_illumination(frame, rng, power=(1.2, 1.2), gain=(0.97, 0.97), offset=0.0)
    got = cv2.cvtColor(out.astype(np.float32) / 255, cv2.COLOR_RGB2HSV).astype(np.float64)
    dh = np.abs((got[..., 0] - ref_hsv[..., 0] + 180) % 360 - 180)
    assert np.percentile(dh, 99) < 3.0
    for c in (1, 2):
        expected = 0.97 * ref_hsv[..., c] ** 1.2
        assert np.abs(got[..., c] - expected).max() < 0.03
    # Identity curves: only the uint8 HSV round trip's quantisation (hue in 1.4 degree steps).
    same = np.abs(A.hsv_illumination(frame, rng, (1.0, 1.0), (1.0, 1.0), 0.0).astype(int) - frame)
    assert same.mean() < 1.0 and same.max() <= 8


# ----------------------------------------------------------------------------- pseudo video


@pytest.mark.parametrize("lucid", [False, True])
def test_static_pseudo_video_small_motions_ids_kept(lucid):
    frame, mask = _scene(void=False)
    frames, masks = A.static_pseudo_video(frame, mask, 6, np.random.default_rng(0), lucid=lucid)
    assert frames.shape == (6, *frame.shape) and masks.shape == (6, *mask.shape)
    if not lucid:
        np.testing.assert_array_equal(frames[0], frame)
        np.testing.assert_array_equal(masks[0], mask)
    for t in range(6):
        assert set(np.unique(masks[t])) == {0, 1, 2}
    for t in range(1, 6):
        assert not np.array_equal(masks[t], masks[t - 1])
        for k in (1, 2):
            assert _iou(masks[t] == k, masks[t - 1] == k) > 0.6
            shift = np.subtract(
                ndimage.center_of_mass(masks[t] == k), ndimage.center_of_mass(masks[t - 1] == k)
            )
            assert np.hypot(*shift) < 0.06 * mask.shape[1]
        # The same warp for frame and mask: object pixels keep their object's colour.
        inner = cv2.erode((masks[t] == 1).view(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert frames[t][inner][:, 0].mean() > 150


# ----------------------------------------------------------------------------- determinism, data


def _all_augmentations(rng):
    frame, mask = _scene()
    clip_f, clip_m = np.stack([frame] * 2), np.stack([mask] * 2)
    return [
        *A.random_scale_crop(clip_f, clip_m, (64, 64), rng),
        A.photometric_jitter(clip_f, rng),
        A.simulate_prior(mask, rng),
        *A.lucid_dream(frame, mask, rng),
        *A.static_pseudo_video(frame, mask, 3, rng, lucid=True),
    ]


def test_same_seed_same_output_different_seed_differs():
    a = _all_augmentations(np.random.default_rng(11))
    b = _all_augmentations(np.random.default_rng(11))
    c = _all_augmentations(np.random.default_rng(12))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert all(not np.array_equal(x, z) for x, z in zip(a, c, strict=True))


def _davis_sample():
    root = shared_path(DAVIS_MINI) / "DAVIS"
    frame = cv2.imread(str(root / "JPEGImages/480p/dog/00000.jpg"))[..., ::-1].copy()
    return frame, read_mask(root / "Annotations/480p/dog/00000.png")


def test_real_davis_frame():
    frame, mask = _davis_sample()
    rng = np.random.default_rng(0)
    clip_f, clip_m = A.random_scale_crop(frame[None], mask[None], (465, 465), rng)
    out_f, out_m, prior = A.lucid_dream(clip_f[0], clip_m[0], rng)
    assert set(np.unique(out_m)) == set(np.unique(clip_m[0])) - {A.VOID}
    assert 0.4 < _iou(prior > 0, out_m > 0) < 0.99


def _benchmark(repeats: int = 30) -> None:
    """Median wall time of the pipeline pieces on a real DAVIS frame (480 x 854 -> 465 x 465)."""
    frame, mask = _davis_sample()
    rng = np.random.default_rng(0)
    frames, masks = np.stack([frame] * 3), np.stack([mask] * 3)

    def clip():
        f, m = A.random_scale_crop(frames, masks, (465, 465), rng)
        f, m = A.random_flip(f, m, rng)
        return A.photometric_jitter(f, rng), m

    small_f, small_m = clip()
    cases = {
        "scale_crop+flip+jitter, 3 x 480x854 -> 465x465": clip,
        "simulate_prior 465x465": lambda: A.simulate_prior(small_m[0], rng),
        "lucid_dream 465x465": lambda: A.lucid_dream(small_f[0], small_m[0], rng),
        "static_pseudo_video T=3 465x465": lambda: A.static_pseudo_video(
            small_f[0], small_m[0], 3, rng
        ),
    }
    for name, fn in cases.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        print(f"{name}: {1e3 * np.median(times):.1f} ms (min {1e3 * min(times):.1f})")


if __name__ == "__main__":
    _benchmark()
