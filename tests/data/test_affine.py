"""RVOS's clip augmentation (vos_jax/data/affine.py): official ranges, composition and sampling."""

import numpy as np

from vos_jax.data import affine


def _coordinates(height, width):
    """A frame whose pixel holds its own (row, column) in channels 0 and 1 (sizes <= 256)."""
    rows, cols = np.mgrid[:height, :width]
    return np.stack([rows, cols, np.zeros_like(rows)], -1).astype(np.uint8)


def _official_warp(image, matrix):
    """rvos src/dataloader/transforms/utils.py:67-137 (th_affine2d, nearest) in NumPy: output
    (row, col) p samples the input at A (p - c) + b + c, clamped to the image, then rounded."""
    height, width = image.shape[:2]
    centre = np.array([height / 2 - 0.5, width / 2 - 0.5])
    coords = np.stack(np.mgrid[:height, :width], -1).reshape(-1, 2) - centre
    src = coords @ matrix[:2, :2].T + matrix[:2, 2] + centre
    rows = np.clip(src[:, 0], 0, height - 1).round().astype(int)
    cols = np.clip(src[:, 1], 0, width - 1).round().astype(int)
    return image[rows, cols].reshape(image.shape)


def test_sample_affine_official_ranges_and_composition():
    """M = R T Sh Z: the linear part's columns are R's scaled by zx and zy, perpendicular up to
    the shear, which is at most 0.1 DEGREE (official converts it as degrees)."""
    height, width = 240, 427
    angles, zooms, shifts, shears = [], [], [], []
    for seed in range(400):
        m = affine.sample_affine(np.random.default_rng(seed), (height, width))
        np.testing.assert_array_equal(m[2], [0, 0, 1])
        linear = m[:2, :2]
        angles.append(np.degrees(np.arctan2(linear[1, 0], linear[0, 0])))
        zooms.extend(np.linalg.norm(linear, axis=0))
        cos_between = linear[:, 0] @ linear[:, 1] / np.prod(np.linalg.norm(linear, axis=0))
        shears.append(90 - np.degrees(np.arccos(cos_between)))
        rotation = linear[:, 0] / np.linalg.norm(linear[:, 0])
        rot = np.array([[rotation[0], -rotation[1]], [rotation[1], rotation[0]]])
        shifts.append(rot.T @ m[:2, 2] / [height, width])  # T's fractions, before R
    angles, zooms, shifts, shears = map(np.abs, map(np.array, (angles, zooms, shifts, shears)))
    assert angles.max() <= 10 and angles.max() > 9.5
    assert zooms.min() >= 0.7 - 1e-3 and zooms.max() <= 1.4 + 1e-3
    assert zooms.min() < 0.72 and zooms.max() > 1.38
    assert shifts.max() <= 0.1 + 1e-3 and shifts.max() > 0.095
    assert shears.max() <= 0.1 + 1e-6 and shears.max() > 0.09
    zx_over_zy = [
        np.divide(*np.linalg.norm(_linear(affine.sample_affine(_rng(s), (9, 9))), axis=0))
        for s in range(20)
    ]
    assert np.ptp(zx_over_zy) > 0.3  # zx and zy are drawn independently


def _rng(seed):
    return np.random.default_rng(seed)


def _linear(matrix):
    return matrix[:2, :2]


def test_warp_is_the_official_nearest_map_with_clamping():
    frame = _coordinates(60, 100)
    for seed in range(10):
        matrix = affine.sample_affine(np.random.default_rng(seed), (60, 100))
        frames, masks = affine.warp_clip(frame[None], frame[None, ..., 1], matrix)
        expected = _official_warp(frame, matrix)
        assert np.mean(np.all(frames[0] == expected, -1)) > 0.99  # rounding ties may differ
        assert np.mean(masks[0] == expected[..., 1]) > 0.99
        assert not np.array_equal(frames[0], frame)


def test_one_transform_for_every_frame_of_a_clip():
    base = _coordinates(60, 100)
    frames = np.stack([base, base, base + np.array([0, 0, 7], np.uint8), base])
    masks = np.stack([base[..., 1]] * 4)
    for seed in range(10):
        out_f, out_m = affine.random_affine_clip(
            frames, masks, (60, 100), np.random.default_rng(seed)
        )
        for t in (1, 3):
            np.testing.assert_array_equal(out_f[t], out_f[0])
            np.testing.assert_array_equal(out_m[t], out_m[0])
        np.testing.assert_array_equal(out_f[2, ..., :2], out_f[0, ..., :2])
        assert (out_f[2, ..., 2] == 7).all()  # same geometry, the frame's own content


def test_frames_resized_first_and_masks_keep_their_ids():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (2, 120, 200, 3), np.uint8)
    masks = np.zeros((2, 120, 200), np.uint8)
    masks[:, 30:90, 40:160] = 3
    masks[:, 50:60, 50:70] = 255
    out_f, out_m = affine.random_affine_clip(frames, masks, (60, 100), rng)
    assert out_f.shape == (2, 60, 100, 3) and out_m.shape == (2, 60, 100)
    assert set(np.unique(out_m)) <= {0, 3, 255} and 3 in out_m


def test_the_mask_border_is_replicated_as_official():
    """A zoom out (zoom > 1) samples beyond the image: official clamps, so the edge column's
    id fills the outside instead of background."""
    mask = np.ones((40, 60), np.uint8)
    mask[:, 0] = 2
    zoom_out = np.diag([1.4, 1.4, 1.0])
    _, out = affine.warp_clip(np.zeros((1, 40, 60, 3), np.uint8), mask[None], zoom_out)
    assert (out > 0).all()
    assert (out[0, :, :8] == 2).all()  # columns 0..8 sample 1.4 (p - 29.5) + 29.5 < 0.5


def test_flip_drawn_once_per_clip_with_probability_one_half():
    frames = np.stack([_coordinates(40, 60)] * 3)
    masks = frames[..., 1]
    flips = 0
    for seed in range(200):
        plain = affine.random_affine_clip(
            frames, masks, (40, 60), np.random.default_rng(seed), False
        )
        out = affine.random_affine_clip(frames, masks, (40, 60), np.random.default_rng(seed))
        if not np.array_equal(out[0], plain[0]):
            matrix = affine.sample_affine(_after_flip(seed), (40, 60))
            flipped = affine.warp_clip(frames[:, :, ::-1].copy(), masks[:, :, ::-1].copy(), matrix)
            np.testing.assert_array_equal(out[0], flipped[0])
            np.testing.assert_array_equal(out[1], flipped[1])
            flips += 1
    assert 80 <= flips <= 120


def _after_flip(seed):
    rng = np.random.default_rng(seed)
    rng.random()  # the flip draw
    return rng
