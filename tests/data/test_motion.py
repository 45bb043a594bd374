"""Motion and event statistics of mask videos (data/motion.py) on constructed videos, and the
synthetic "davis" preset against real DAVIS (../shared/data/davis-mini)."""

import functools

import numpy as np
import pytest

from benchmarks.motion_stats import davis_masks, davis_multi_object_masks
from tests.shared_data import shared_path
from vos_jax.data.motion import event_statistics, events, motion_pairs, motion_statistics
from vos_jax.data.synthetic import PRESETS, render_video


def test_a_moving_and_growing_square():
    masks = np.zeros((3, 64, 64), np.uint8)
    masks[0, 10:20, 10:20] = 1  # 10 x 10
    masks[1, 10:20, 13:23] = 1  # moved 3 px: 0.3 of its size
    masks[2, 10:30, 13:23] = 1  # twice the area, centroid 5 px down
    masks[:, 40:50, 40:50] = 2  # still
    displacement, scale = motion_pairs(masks)
    np.testing.assert_allclose(np.sort(displacement), [0.0, 0.0, 0.3, 0.5])
    np.testing.assert_allclose(np.sort(scale), [0.0, 0.0, 0.0, 0.5 * np.log(2)])


def test_absent_frames_break_the_pairs():
    masks = np.zeros((3, 16, 16), np.uint8)
    masks[0, 2:6, 2:6] = masks[2, 8:12, 8:12] = 1
    with pytest.raises(ValueError, match="no object"):
        motion_statistics([masks])


@functools.cache
@functools.cache
def demo_videos(preset: str) -> tuple[np.ndarray, ...]:
    """Masks of 40 videos as the demo makes them (24 frames, 144x240, 3 objects); made once per
    preset for the tests of this module."""
    return tuple(render_video([0, i], 24, (144, 240), 3, False, preset).masks for i in range(40))


def test_events_of_constructed_videos():
    masks = np.zeros((3, 32, 32), np.uint8)
    masks[:2, 10:20, 10:20] = 1  # seen in frame 0, gone in the last: it left
    masks[0, 0:4, 30:32] = 2  # cut by the border, then whole: it entered
    masks[1:, 0:12, 20:32] = 2
    masks[1:, 25:30, 5:10] = 3  # appears late but whole inside the view: not entering
    assert events(masks) == (True, 1, 3)
    assert events(masks[1:]) == (True, 0, 3)  # ids 2, 3 are whole in their first frame
    stats = event_statistics([masks, masks[:, :, ::-1], np.repeat(masks[1:2], 3, 0)])
    assert stats == {"videos": 3, "leave_share": 2 / 3, "enter_share": 2 / 9}


def test_the_davis_preset_has_real_video_events():
    """Objects leave and enter the view about as often as in DAVIS 2017 val (OSVOS's masks as its
    ground truth: rarely); in the "hard" preset one leaves and one enters in every video."""
    real = event_statistics(davis_multi_object_masks(shared_path("data/davis-mini")))
    synthetic = {preset: event_statistics(demo_videos(preset)) for preset in PRESETS}
    print(real, synthetic)
    assert real["videos"] == 30 and real["leave_share"] <= 0.15 and real["enter_share"] <= 0.05
    for key in ("leave_share", "enter_share"):
        assert abs(synthetic["davis"][key] - real[key]) <= 0.05, key
    assert synthetic["hard"]["leave_share"] == 1 and synthetic["hard"]["enter_share"] >= 0.25


def test_the_davis_preset_moves_like_real_video():
    """Median and 90th percentile of displacement and of scale change within 1.5x of the real
    figures, and each nearer the real one than the hard preset's."""
    real = motion_statistics(davis_masks(shared_path("data/davis-mini")))
    synthetic = {preset: motion_statistics(demo_videos(preset)) for preset in PRESETS}
    print(real, synthetic)
    keys = ("displacement_median", "displacement_p90", "scale_median", "scale_p90")
    for key in keys:
        assert 1 / 1.5 < synthetic["davis"][key] / real[key] < 1.5, key
        off = {p: abs(np.log(s[key] / real[key])) for p, s in synthetic.items()}
        assert off["davis"] < off["hard"], key
