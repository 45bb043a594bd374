"""The official training-data options of SampleConfig (FEELVOS triplets, small-object filter,
mask damaging; RVOS affine clips) through `MakeSample`, and their `data.*` config keys."""

import dataclasses
import logging

import cv2
import numpy as np
import pytest

from vos_jax.data import pipeline, sampling
from vos_jax.data.sources import VideoRecord
from vos_jax.training import config as config_lib
from vos_jax.training.data import data_sample_config


def _png(array):
    ok, data = cv2.imencode(".png", array[..., ::-1] if array.ndim == 3 else array)
    assert ok
    return data.tobytes()


def _video(frames, masks, name="video"):
    """A record of lossless frames [T, H, W, 3] and masks [T, H, W]."""
    return VideoRecord(name, tuple(map(_png, frames)), tuple(map(_png, masks)))


def _big_objects(num_frames, size=(64, 96)):
    masks = np.zeros((num_frames, *size), np.uint8)
    masks[:, 8:40, 8:48] = 1
    masks[:, 24:60, 56:90] = 2
    return masks


def _coordinates(num_frames, size=(64, 96)):
    """Every frame the same: channel 0 = row * 3, 1 = column * 2, 2 = 0 (all distinct)."""
    rows, cols = np.mgrid[: size[0], : size[1]]
    frame = np.stack([rows * 3, cols * 2, np.zeros_like(rows)], -1).astype(np.uint8)
    return np.stack([frame] * num_frames)


def _sample(config, record, seed):
    return pipeline.MakeSample(config).random_map(record, np.random.default_rng(seed))


EXACT = dict(crop_size=(64, 96), scale_range=(1.0, 1.0), photometric=False)  # identity crop


def test_triplets_are_adjacent_by_default_the_gap_an_option():
    """Frame t is filled with 10 t: the sample's frames tell which video frames they are."""
    frames = np.stack([np.full((64, 96, 3), 10 * t, np.uint8) for t in range(12)])
    video = _video(frames, _big_objects(12))
    assert pipeline.SampleConfig().max_gap == 1
    config = pipeline.SampleConfig(**EXACT)
    wider = dataclasses.replace(config, max_gap=4)
    gaps = set()
    for seed in range(20):
        index = _sample(config, video, seed)["frames"][:, 0, 0, 0] // 10
        assert index[2] - index[1] == 1 and index[0] != index[2]
        index = _sample(wider, video, seed)["frames"][:, 0, 0, 0] // 10
        gaps.add(index[2] - index[1])
    assert max(gaps) > 1


def test_reference_frame_augmented_apart_previous_and_current_together():
    """Identical frames whose pixels encode their coordinates: after augmentation a frame's
    pixels tell its scale, crop and flip. Previous and current always share one; the reference
    draws its own (and shares theirs with reference_apart=False)."""
    video = _video(_coordinates(6), _big_objects(6))
    base = dict(crop_size=(48, 72), scale_range=(1.0, 1.3), photometric=False)
    apart = pipeline.SampleConfig(**base)
    assert apart.reference_apart
    together = pipeline.SampleConfig(**base, reference_apart=False)
    differs = 0
    for seed in range(20):
        sample = _sample(apart, video, seed)
        np.testing.assert_array_equal(sample["frames"][1], sample["frames"][2])
        np.testing.assert_array_equal(sample["masks"][1], sample["masks"][2])
        differs += not np.array_equal(sample["frames"][0], sample["frames"][1])
        shared = _sample(together, video, seed)["frames"]
        np.testing.assert_array_equal(shared[0], shared[1])
        np.testing.assert_array_equal(shared[1], shared[2])
    assert differs >= 18


@pytest.mark.parametrize("sampling_", ["triplet", "clip"])
def test_small_object_filter_redraws_the_sample(sampling_):
    """Even frames show an object of 5 stride-4 pixels, odd frames one of 20: with the filter
    every sample's reference (frame 0) is an odd frame; without it, some are even."""
    masks = _big_objects(10)
    masks[::2] = 0
    masks[::2, 8:12, 8:28] = 1  # 4 x 20 px: 1 x 5 grid pixels
    frames = np.stack([np.full((64, 96, 3), 10 * t, np.uint8) for t in range(10)])
    video = _video(frames, masks)
    num_frames = 3 if sampling_ == "triplet" else 2
    config = pipeline.SampleConfig(
        sampling=sampling_, num_frames=num_frames, min_stride4_pixels=10, **EXACT
    )
    assert pipeline.SampleConfig().min_stride4_pixels == 0  # off unless a config sets it
    off = dataclasses.replace(config, min_stride4_pixels=0)
    rejected = 0
    for seed in range(20):
        sample = _sample(config, video, seed)
        assert sampling.enough_reference_pixels(sample["masks"][0], 10)
        assert sample["frames"][0, 0, 0, 0] // 10 % 2 == 1
        sample = _sample(off, video, seed)
        rejected += not sampling.enough_reference_pixels(sample["masks"][0], 10)
    assert rejected > 0
    np.testing.assert_array_equal(  # redraws come from the sample's own rng: deterministic
        _sample(config, video, 3)["frames"], _sample(config, video, 3)["frames"]
    )


def test_small_object_filter_keeps_the_last_draw_and_warns(caplog):
    masks = np.zeros((4, 64, 96), np.uint8)
    masks[:, 8:12, 8:28] = 1
    video = _video(np.zeros((4, 64, 96, 3), np.uint8), masks, name="tiny_objects")
    with caplog.at_level(logging.WARNING, logger="vos_jax.data.pipeline"):
        sample = _sample(pipeline.SampleConfig(min_stride4_pixels=10, **EXACT), video, 0)
    assert sample["frames"].shape == (3, 64, 96, 3)
    assert "tiny_objects" in caplog.text and str(pipeline.FILTER_DRAWS) in caplog.text


def test_damage_makes_the_prior_a_damaged_mask():
    video = _video(_coordinates(6), _big_objects(6))
    config = pipeline.SampleConfig(damage=True, **EXACT)
    assert not pipeline.SampleConfig().damage
    for seed in range(5):
        sample = _sample(config, video, seed)
        prior, masks = sample["prior"], sample["masks"]
        assert prior.shape == masks.shape and prior.dtype == np.uint8
        for t in range(3):
            assert not np.array_equal(prior[t], masks[t])
            for k in set(np.unique(masks[t])) - {0, 255}:
                a, b = prior[t] == k, masks[t] == k
                assert (a & b).sum() / (a | b).sum() > 0.6
    assert "prior" not in _sample(pipeline.SampleConfig(**EXACT), video, 0)


def test_affine_clips_one_map_per_clip_at_crop_size():
    video = _video(_coordinates(6, (100, 160)), _big_objects(6, (100, 160)))
    config = pipeline.SampleConfig(
        sampling="clip", num_frames=4, crop_size=(50, 80), affine=True, photometric=False
    )
    resized = cv2.resize(_coordinates(1, (100, 160))[0], (80, 50), interpolation=cv2.INTER_LINEAR)
    moved = 0
    for seed in range(10):
        frames = _sample(config, video, seed)["frames"]
        assert frames.shape == (4, 50, 80, 3)
        for t in range(1, 4):
            np.testing.assert_array_equal(frames[t], frames[0])
        moved += not np.array_equal(frames[0], resized)
    assert moved == 10


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (dict(damage=True, prior=True), "damage"),
        (dict(affine=True), "affine"),  # triplet sampling
        (dict(min_stride4_pixels=-1), "min_stride4_pixels"),
    ],
)
def test_option_conflicts_are_errors(options, match):
    with pytest.raises(ValueError, match=match):
        pipeline.SampleConfig(**options)


def test_config_keys_match_the_sample_options():
    config = config_lib.base_config("feelvos")
    defaults = pipeline.SampleConfig()
    for key in ("max_gap", "stride", "reference_apart", "min_stride4_pixels", "damage", "affine"):
        assert config.data[key] == getattr(defaults, key), key
    config.data.update(reference_apart=False, min_stride4_pixels=3, damage=True, max_gap=2)
    sample = data_sample_config(config_lib.validate(config))
    assert (sample.reference_apart, sample.min_stride4_pixels, sample.damage) == (False, 3, True)
    assert sample.max_gap == 2 and sample.photometric
    rvos = config_lib.base_config("rvos")
    rvos.data.update(affine=True, num_frames=5, stride=3)
    sample = data_sample_config(config_lib.validate(rvos))
    assert sample.affine and sample.stride == 3
    for bad, match in (
        (dict(min_stride4_pixels=-1), "min_stride4_pixels"),
        (dict(stride=0), "data.stride"),
        (dict(damage=True, prior=True), "damage"),
    ):
        broken = config_lib.base_config("feelvos")
        broken.data.update(**bad)
        with pytest.raises(config_lib.ConfigError, match=match):
            config_lib.validate(broken)
