"""FEELVOS mask damaging (vos_jax/data/damage.py) against the official steps and their bounds."""

import cv2
import numpy as np
import pytest
from scipy import ndimage

from vos_jax.data import damage


def _official(mask, rng):
    """feelvos/utils/mask_damaging.py:48-160 with dilate=False, written with scipy.ndimage in
    (row, column) coordinates: shift (order 0), then scale about half the box's extents and
    rotation about (H / 2, W / 2), each bilinear (skimage's warp) thresholded at 0.5."""
    out = np.zeros_like(mask)
    height, width = mask.shape
    for k in rng.permutation(np.setdiff1d(np.unique(mask), [0, 255])):
        obj = (mask == k).astype(np.float64)
        rows, cols = np.nonzero(obj)
        size = np.sqrt((rows.max() - rows.min()) * (cols.max() - cols.min()))
        obj = ndimage.shift(obj, rng.uniform(-0.05 * size, 0.05 * size, 2), order=0)
        rows, cols = np.nonzero(obj)
        centre = np.array([0.5 * (rows.max() - rows.min()), 0.5 * (cols.max() - cols.min())])
        factor = rng.uniform(0.975, 1.025)
        obj = ndimage.affine_transform(obj, np.eye(2) / factor, centre - centre / factor, order=1)
        obj = (obj > 0.5).astype(np.float64)
        theta = np.deg2rad(rng.uniform(-3.0, 3.0))  # skimage: counter-clockwise in (x, y)
        inverse = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        centre = np.array([0.5 * height, 0.5 * width])
        obj = ndimage.affine_transform(obj, inverse, centre - inverse @ centre, order=1)
        out[obj > 0.5] = k
    return out


def _scene():
    mask = np.zeros((200, 240), np.uint8)
    cv2.ellipse(mask, (70, 120), (30, 50), 20, 0, 360, 1, -1)
    cv2.rectangle(mask, (150, 30), (210, 90), 2, -1)
    mask[150:160, 150:220] = 255  # void
    return mask


def test_damage_matches_the_official_steps():
    mask = _scene()
    changed = 0
    for seed in range(10):
        ours = damage.damage_masks(mask, np.random.default_rng(seed))
        official = _official(mask, np.random.default_rng(seed))
        for k in (1, 2):
            a, b = ours == k, official == k
            assert (a & b).sum() / (a | b).sum() > 0.98, (seed, k)
        changed += not np.array_equal(ours, np.where(mask == 255, 0, mask))
    assert changed == 10


def _moments(obj):
    rows, cols = np.nonzero(obj)
    centroid = np.array([rows.mean(), cols.mean()])
    cov = np.cov(np.stack([rows, cols]))
    angle = 0.5 * np.degrees(np.arctan2(2 * cov[0, 1], cov[1, 1] - cov[0, 0]))
    return obj.sum(), centroid, angle


def test_damage_stays_within_the_official_shift_scale_and_rotation():
    """A bar: its centroid moves by at most the shift + the scale's and rotation's
    displacement, its area changes by at most the scale, its orientation by at most 3 degrees;
    and each of the three is actually there (the maxima come close to the bounds)."""
    height, width = 240, 320
    mask = np.zeros((height, width), np.uint8)
    mask[60:120, 40:240] = 1  # 60 x 200 bar, extents 59 x 199
    area, centroid, angle = _moments(mask)
    size = np.sqrt(59 * 199)
    scale_centre = np.array([0.5 * 59, 0.5 * 199])
    image_centre = np.array([0.5 * height, 0.5 * width])
    bound = (
        np.hypot(0.05 * size, 0.05 * size)
        + 0.025 * np.linalg.norm(centroid - scale_centre)
        + 2 * np.sin(np.radians(1.5)) * np.linalg.norm(centroid - image_centre)
        + 1.5  # rounding
    )
    moves, ratios, turns = [], [], []
    for seed in range(60):
        out = damage.damage_masks(mask, np.random.default_rng(seed))
        assert set(np.unique(out)) <= {0, 1} and out.shape == mask.shape
        a, c, t = _moments(out == 1)
        moves.append(np.linalg.norm(c - centroid))
        ratios.append(a / area)
        turns.append(t - angle)
    assert max(moves) <= bound and max(moves) > 0.5 * bound
    assert 0.975**2 - 0.01 <= min(ratios) and max(ratios) <= 1.025**2 + 0.01  # no dilation
    assert max(ratios) - min(ratios) > 0.04  # the scale varies
    assert max(np.abs(turns)) <= 3.2 and max(np.abs(turns)) > 2.0


def test_objects_damaged_apart_in_a_random_order_background_and_void_kept_out():
    mask = np.zeros((100, 100), np.uint8)
    mask[20:60, 20:60] = 1
    mask[40:80, 40:80] = 2  # overlaps object 1's corner after damage, either one on top
    mask[90:, :] = 255
    winners = set()
    for seed in range(20):
        out = damage.damage_masks(mask, np.random.default_rng(seed))
        assert set(np.unique(out)) <= {0, 1, 2} and not (out[mask == 0] == 255).any()
        overlap = (ndimage.binary_dilation(mask == 1, iterations=3) & (mask == 2))[40:60, 40:60]
        winners |= set(np.unique(out[40:60, 40:60][overlap])) - {0}
    assert winners == {1, 2}
    again = damage.damage_masks(mask, np.random.default_rng(3))
    np.testing.assert_array_equal(again, damage.damage_masks(mask, np.random.default_rng(3)))


@pytest.mark.parametrize("seed", range(5))
def test_shift_is_official_scipy_shift(seed):
    obj = np.zeros((90, 120), bool)
    obj[10:50, 30:100] = True
    ours = damage._shift(obj, np.random.default_rng(seed))
    offset = np.random.default_rng(seed).uniform(-0.05, 0.05, 2) * np.sqrt(39 * 69)
    np.testing.assert_array_equal(ours, ndimage.shift(obj.view(np.uint8), offset, order=0) > 0)
    assert not np.array_equal(ours, obj) or np.abs(offset).max() < 0.5
