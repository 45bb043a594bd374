"""Frame sampling (triplet, clip) and object remapping of training samples."""

import numpy as np
import pytest

from vos_jax.data import sampling


@pytest.mark.parametrize("seed", range(20))
def test_triplet_is_ordered_annotated_and_within_the_gap(seed):
    rng = np.random.default_rng(seed)
    annotated = rng.random(40) < 0.7
    annotated[[3, 4]] = True
    reference, previous, current = sampling.triplet_indices(annotated, 3, rng)
    assert annotated[[reference, previous, current]].all()
    assert previous < current and reference != current
    earlier = np.flatnonzero(annotated[:current])
    if (earlier >= current - 3).any():  # a close enough previous frame exists: it is used
        assert current - previous <= 3
    else:
        assert previous == earlier[-1]


def test_triplet_edge_cases_and_determinism():
    one = np.zeros(10, bool)
    one[4] = True
    np.testing.assert_array_equal(sampling.triplet_indices(one, 5, np.random.default_rng()), 4)
    with pytest.raises(ValueError, match="no annotated frame"):
        sampling.triplet_indices(np.zeros(5, bool), 5, np.random.default_rng())
    draws = [sampling.triplet_indices(np.ones(50, bool), 5, np.random.default_rng(7)) for _ in "ab"]
    np.testing.assert_array_equal(*draws)


def test_clip_has_the_stride_and_pads_short_videos():
    rng = np.random.default_rng(0)
    for _ in range(20):
        clip = sampling.clip_indices(np.ones(30, bool), 5, 3, rng)
        np.testing.assert_array_equal(np.diff(clip), 3)
    short = sampling.clip_indices(np.ones(4, bool), 6, 1, rng)
    np.testing.assert_array_equal(short, [0, 1, 2, 3, 3, 3])
    sparse = np.zeros(30, bool)
    sparse[::5] = True  # only every 5th frame annotated: the stride counts annotated frames
    np.testing.assert_array_equal(np.diff(sampling.clip_indices(sparse, 3, 1, rng)), 5)


def test_remap_objects_renumbers_first_frame_objects_and_pads():
    masks = np.zeros((2, 4, 4), np.uint8)
    masks[0, 0, :3] = [7, 3, 255]
    masks[1, 0, :4] = [7, 3, 255, 9]  # 9 appears later: background for this sample
    out, valid = sampling.remap_objects(masks, 4, np.random.default_rng(0))
    np.testing.assert_array_equal(out[1, 0, :4], [2, 1, 255, 0])  # sorted ids 3 -> 1, 7 -> 2
    np.testing.assert_array_equal(valid, [True, True, True, False, False])


def test_remap_objects_beyond_the_budget_become_void():
    masks = np.arange(6, dtype=np.uint8).reshape(1, 1, 6)  # background + 5 objects
    out, valid = sampling.remap_objects(masks, 3, np.random.default_rng(1))
    kept = out[0, 0, 1:]
    assert sorted(kept[kept != 255]) == [1, 2, 3] and np.sum(kept == 255) == 2
    assert valid.tolist() == [True] * 4


@pytest.mark.parametrize("seed", range(10))
def test_triplet_with_gap_one_takes_adjacent_previous_and_current(seed):
    """Official FEELVOS (sample_adjacent_and_consistent_query_frames=True): previous and current
    are neighbours; with every frame annotated, exactly one frame apart."""
    rng = np.random.default_rng(seed)
    _, previous, current = sampling.triplet_indices(np.ones(30, bool), 1, rng)
    assert current - previous == 1
    sparse = np.zeros(30, bool)
    sparse[::5] = True  # YouTube-VOS-like: the nearest earlier annotated frame
    _, previous, current = sampling.triplet_indices(sparse, 1, rng)
    assert current - previous == 5


def _stride4_object(pixels, value=1, size=(40, 40)):
    """A mask with `pixels` samples of `value` on the stride-4 grid (pixel 4 j) and 3x3 blocks
    around them, so that full-resolution area and grid count differ."""
    mask = np.zeros(size, np.uint8)
    for j in range(pixels):
        y, x = 4 * (j // 5) + 4, 4 * (j % 5) + 4
        mask[y - 1 : y + 2, x - 1 : x + 2] = value
    return mask


def test_small_object_filter_counts_stride4_pixels_of_every_label():
    ok = sampling.enough_reference_pixels
    assert not ok(_stride4_object(5), 10)  # 45 full-resolution pixels, 5 on the grid
    assert ok(_stride4_object(10), 10)
    assert ok(_stride4_object(5), 0)  # 0: off
    two = _stride4_object(10)
    two[0, 0] = 2  # one grid pixel of another object
    assert not ok(two, 10)
    void = _stride4_object(10)
    void[0, :8] = 255  # void counts as a label too (official unique_with_counts)
    assert not ok(void, 10)
    assert not ok(np.ones((40, 40), np.uint8), 10)  # no background
    assert not ok(np.zeros((40, 40), np.uint8), 10)  # no foreground
    full = np.ones((40, 40), np.uint8)
    full[:8] = 0  # background: 2 grid rows x 10 = 20 pixels
    assert ok(full, 10) and not ok(full, 21)


def test_remap_objects_on_frames_wider_than_128_pixels():
    """RVOS trains on whole 240x427 frames: widths beyond OpenCV's 128-channel limit work."""
    masks = np.zeros((2, 4, 427), np.uint8)
    masks[:, :, 300:] = 7
    masks[1, 0, 0] = 255
    out, valid = sampling.remap_objects(masks, 3, np.random.default_rng(0))
    assert out.shape == masks.shape and set(np.unique(out)) == {0, 1, 255}
    np.testing.assert_array_equal(out[:, :, 300:], 1)
    np.testing.assert_array_equal(valid, [True, True, False, False])


def test_select_objects_keeps_some_and_merges():
    """Against a per-pixel rule: kept ids stay (or become 1 with merge), others background,
    void stays void."""
    rng = np.random.default_rng(0)
    masks = rng.choice(np.array([0, 1, 2, 5, 7, 255], np.uint8), (3, 17, 23))
    assert sampling.select_objects(masks, None, False) is masks
    for keep, merge in [((2, 7), False), ((2, 7), True), (None, True), ((), False)]:
        out = sampling.select_objects(masks, keep, merge)
        for value in np.unique(masks):
            if value == 255:
                want = 255
            elif value == 0 or (keep is not None and value not in keep):
                want = 0
            else:
                want = 1 if merge else value
            assert np.all(out[masks == value] == want), (keep, merge, value)
