"""Batched multi-video inference (`propagate_videos`, `vos-jax segment --batch`): every family's
step over a batch of videos of different lengths and object counts, one arriving late, in one
compiled call per frame; each video's results equal its batch-1 run; one compilation per size."""

import cv2
import jax
import numpy as np
import pytest

from vos_jax import families
from vos_jax.cli import main
from vos_jax.data import synthetic
from vos_jax.families import save_model
from vos_jax.inference.engine import Video, propagate_videos
from vos_jax.io.masks import read_mask, write_mask

SIZE = (64, 96)
OBJECTS = 3


def _model(family, **model_kwargs):
    """A tiny model of the family with random weights -> (model, variables)."""
    fam = families.get(family)
    model, _ = families.build_model(family, "tiny", **model_kwargs)
    example = {
        "frames": np.zeros((1, 1, *SIZE, 3), np.uint8),
        "masks": np.zeros((1, 1, *SIZE), np.uint8),
        "object_valid": np.ones((1, OBJECTS + 1), bool),
    }
    variables = jax.jit(lambda k: fam.init_variables(model, k, example))(jax.random.key(0))
    return model, variables


def _propagator(family, options=None, **model_kwargs):
    model, variables = _model(family, **model_kwargs)
    return families.get(family).propagator(model, variables, max_objects=OBJECTS, **(options or {}))


def _videos(unsupervised: bool):
    """4 videos: 5, 3, 6 and 2 frames, 3 / 1 / 2 / 0 objects (ids 1..3, 7, 4-5), the third
    with an object that arrives at frame 2 (not for unsupervised models: no masks)."""
    videos = []
    for seed, (frames, objects) in enumerate([(5, 3), (3, 1), (6, 2), (2, 0)]):
        video, masks = synthetic.generate_video(seed, frames, SIZE, max(objects, 1), False)
        if unsupervised:
            videos.append(Video(list(video)))
            continue
        first = masks[0] if objects else np.zeros(SIZE, np.uint8)
        later = {}
        if objects == 1:
            first = np.where(first == 1, 7, 0).astype(np.uint8)
        if objects == 2:  # object 2 given from frame 2 on, as id 5; object 1 as id 4
            first = np.where(masks[0] == 1, 4, 0).astype(np.uint8)
            later = {2: np.where(masks[2] == 2, 5, 0).astype(np.uint8)}
        videos.append(Video(list(video), first, later))
    return videos


CASES = {  # the late object's frame is a second reference frame for FEELVOS
    "feelvos": ("feelvos", {"options": {"max_reference_frames": 2}}),
    "rvos": ("rvos", {}),
    "rvos zero-shot": ("rvos", {"one_shot": False}),
    "siammask": ("siammask", {}),
    "portrait": ("portrait", {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_batched_videos_equal_batch_one(case):
    family, kwargs = CASES[case]
    propagator = _propagator(family, **kwargs)
    videos = _videos(propagator.unsupervised)
    alone = [[r for _, _, r in propagate_videos(propagator, [v], 1, True)] for v in videos]
    batched = [[] for _ in videos]
    for index, frame, result in propagate_videos(propagator, videos, batch=3, keep_probs=True):
        assert frame.shape == (*SIZE, 3)
        batched[index].append(result)
    # 2 batches (3 videos, then 1 padded with 2 empty ones): 2 compilations of each, B=1 and 3.
    assert propagator.step._cache_size() == 2 and propagator.init._cache_size() == 2
    for v, (want, got) in enumerate(zip(alone, batched, strict=True)):
        assert len(got) == len(want) == len(videos[v].frames)
        for t, (a, b) in enumerate(zip(want, got, strict=True)):
            assert a.ids == b.ids, (v, t)
            where = f"video {v} frame {t}"
            np.testing.assert_allclose(b.scores, a.scores, atol=1e-5, err_msg=where)
            if a.probs is None:  # a given frame
                np.testing.assert_array_equal(b.labels, a.labels, err_msg=where)
                continue
            diff = np.abs(b.probs - a.probs)
            # Batch 1 and batch 3 convolutions round differently in float32's last bits, which
            # a tracker's next crop (placed by the predicted box) can carry a little further.
            assert np.quantile(diff, 0.999) <= 1e-5 and diff.max() <= 1e-3, where
            if a.probs.shape[-1] == 1:  # no object
                assert not b.labels.any()
                continue
            # Labels equal wherever batch 1's two best slots differ by more than twice the
            # largest probability difference (only there can an argmax not move; random weights
            # give near-uniform probabilities, ties are common).
            top2 = np.sort(a.probs, axis=-1)[..., -2:]
            decided = top2[..., 1] - top2[..., 0] > 2 * diff.max()
            np.testing.assert_array_equal(b.labels[decided], a.labels[decided], err_msg=where)
            assert decided.mean() > 0.25, where  # not vacuous
            for x, y in ((a.boxes, b.boxes), (a.rotated, b.rotated)):
                assert (x is None) == (y is None)
                if x is not None:
                    np.testing.assert_allclose(y, x, atol=1e-3)
    if not propagator.unsupervised:  # the given masks hold where given
        np.testing.assert_array_equal(batched[0][0].labels, videos[0].first_mask)
        np.testing.assert_array_equal(batched[2][2].labels == 5, videos[2].later_masks[2] == 5)
        assert batched[2][1].ids == (4,) and batched[2][2].ids == (4, 5)


def test_a_batch_refuses_videos_of_different_sizes():
    propagator = _propagator("portrait")
    small = Video([np.zeros((32, 48, 3), np.uint8)], np.zeros((32, 48), np.uint8))
    big = Video([np.zeros((*SIZE, 3), np.uint8)], np.zeros(SIZE, np.uint8))
    with pytest.raises(ValueError, match="a batch takes videos of one size"):
        list(propagate_videos(propagator, [small, big], batch=2))
    with pytest.raises(ValueError, match="batch=0"):
        list(propagate_videos(propagator, [small], batch=0))


def test_segment_a_folder_of_videos_in_batches(tmp_path):
    """`vos-jax segment --frames DIR_OF_VIDEOS --masks DIR --batch 2`: DAVIS-layout folders of
    two sizes, each video's PNGs equal to segmenting it alone."""
    checkpoint = save_model(tmp_path / "ckpt", "feelvos", "tiny", _model("feelvos")[1])
    frames_root, masks_root = tmp_path / "JPEGImages", tmp_path / "Annotations"
    for seed, (length, size) in enumerate([(4, SIZE), (3, (48, 64)), (2, SIZE)]):
        video, masks = synthetic.generate_video(seed, length, size, 2, False)
        (frames_root / f"video{seed}").mkdir(parents=True)
        for t, frame in enumerate(video):
            cv2.imwrite(str(frames_root / f"video{seed}" / f"{t:05d}.jpg"), frame[..., ::-1])
        write_mask(masks_root / f"video{seed}" / "00000.png", masks[0])
    common = ["segment", "--checkpoint", str(checkpoint), "--no_overlay"]
    batched = ["--frames", str(frames_root), "--masks", str(masks_root), "--batch", "2"]
    assert main([*common, *batched, "--out", str(tmp_path / "batched")]) == 0
    for seed in range(3):
        name = f"video{seed}"
        alone = ["--frames", str(frames_root / name), "--masks", str(masks_root / name)]
        assert main([*common, *alone, "--out", str(tmp_path / "alone")]) == 0
        want = sorted((tmp_path / "alone" / name).glob("*.png"))
        got = sorted((tmp_path / "batched" / name).glob("*.png"))
        assert [p.name for p in got] == [p.name for p in want] and len(want) == [4, 3, 2][seed]
        # The same masks, up to pixels at float32 near-ties of the random model (probabilities
        # are compared to 1e-5 above); a video given another's results would differ widely.
        pairs = zip(want, got, strict=True)
        same = np.mean([np.mean(read_mask(a) == read_mask(b)) for a, b in pairs])
        assert same > 0.995, (name, same)
