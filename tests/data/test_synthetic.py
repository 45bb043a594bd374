"""Tests for the synthetic dataset: determinism, DAVIS / YouTube-VOS layouts, and video content."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from vos_jax.data import generate_video, render_video, write_dataset
from vos_jax.data.synthetic import CATEGORIES, object_areas
from vos_jax.io.layouts import read_davis_sequence
from vos_jax.io.masks import davis_palette, read_mask

T, SIZE, K = 8, (64, 96), 3
FRAME_NAMES = [f"{5 * t:05d}" for t in range(T)]


def _files(root: Path) -> dict[str, bytes]:
    """Every file under root, by relative path, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def davis_root(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("davis"), "davis", 3, T, SIZE, K, seed=0)


@pytest.fixture(scope="module")
def youtube_root(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("youtube"), "youtube", 6, T, SIZE, K, seed=0)


@pytest.mark.parametrize("fmt", ["davis", "youtube"])
def test_same_seed_gives_byte_identical_files(tmp_path, fmt):
    a = _files(write_dataset(tmp_path / "a", fmt, 2, 4, SIZE, 2, seed=5))
    b = _files(write_dataset(tmp_path / "b", fmt, 2, 4, SIZE, 2, seed=5))
    assert len(a) > 10
    assert a.keys() == b.keys()
    assert all(a[name] == b[name] for name in a)


def test_different_seed_gives_different_videos(tmp_path):
    a = _files(write_dataset(tmp_path / "a", "davis", 2, 4, SIZE, 2, seed=5))
    b = _files(write_dataset(tmp_path / "b", "davis", 2, 4, SIZE, 2, seed=6))
    assert a.keys() == b.keys()
    jpgs = [name for name in a if name.endswith(".jpg")]
    assert jpgs and all(a[name] != b[name] for name in jpgs)
    f0, m0 = generate_video([1, 0], T, SIZE, K)
    f1, m1 = generate_video([1, 1], T, SIZE, K)
    assert not np.array_equal(f0, f1) and not np.array_equal(m0, m1)


def test_video_does_not_depend_on_num_videos(tmp_path):
    one = _files(write_dataset(tmp_path / "one", "davis", 1, 4, SIZE, 2, seed=3))
    three = _files(write_dataset(tmp_path / "three", "davis", 3, 4, SIZE, 2, seed=3))
    seq0 = [name for name in one if "/synth-000/" in name]
    assert len(seq0) == 12  # 4 frames, their masks, and the same masks as unsupervised GT
    assert all(one[name] == three[name] for name in seq0)


def test_generate_video_arrays():
    frames, masks = generate_video(4, T, SIZE, K)
    assert frames.dtype == np.uint8 and frames.shape == (T, *SIZE, 3)
    assert masks.dtype == np.uint8 and masks.shape == (T, *SIZE)
    assert set(np.unique(masks)) <= set(range(K + 1))  # no void (255)
    again = generate_video(4, T, SIZE, K)
    assert np.array_equal(frames, again[0]) and np.array_equal(masks, again[1])
    video = render_video(4, T, SIZE, K)
    assert np.array_equal(video.frames, frames) and np.array_equal(video.masks, masks)
    assert video.full_masks.shape == (T, K, *SIZE)
    assert all(category in CATEGORIES for category in video.categories)


ANNOTATIONS = ("Annotations", "Annotations_unsupervised")


def test_davis_layout(davis_root):
    names = {p.relative_to(davis_root).as_posix() for p in davis_root.rglob("*") if p.is_file()}
    expected = {f"ImageSets/{y}/{s}.txt" for y in ("2016", "2017") for s in ("train", "val")}
    for seq in ("synth-000", "synth-001", "synth-002"):
        for t in range(T):
            expected.add(f"JPEGImages/480p/{seq}/{t:05d}.jpg")
            expected.add(f"Annotations/480p/{seq}/{t:05d}.png")
            expected.add(f"Annotations_unsupervised/480p/{seq}/{t:05d}.png")
            same = [davis_root / k / f"480p/{seq}/{t:05d}.png" for k in ANNOTATIONS]
            assert same[0].read_bytes() == same[1].read_bytes()
    assert names == expected
    for year in ("2016", "2017"):
        sets = davis_root / "ImageSets" / year
        assert (sets / "train.txt").read_text().splitlines() == ["synth-000", "synth-001"]
        assert (sets / "val.txt").read_text().splitlines() == ["synth-002"]


@pytest.mark.parametrize(
    ("num_videos", "num_val", "given"),
    [(1, 1, None), (5, 1, None), (8, 2, None), (10, 2, None), (5, 3, 3), (4, 4, 4)],
)
def test_split_sizes(tmp_path, num_videos, num_val, given):
    """A fifth of the videos (at least one) is held out, or `num_val` of them when given."""
    chosen = {} if given is None else {"num_val": given}
    davis = write_dataset(tmp_path / "d", "davis", num_videos, 2, (16, 16), 1, seed=0, **chosen)
    train = (davis / "ImageSets/2017/train.txt").read_text().splitlines()
    val = (davis / "ImageSets/2017/val.txt").read_text().splitlines()
    names = [f"synth-{i:03d}" for i in range(num_videos)]
    assert train == names[: num_videos - num_val] and val == names[num_videos - num_val :]
    youtube = write_dataset(tmp_path / "y", "youtube", num_videos, 2, (16, 16), 1, seed=0, **chosen)
    for split, count in (("train", num_videos - num_val), ("valid", num_val)):
        meta = json.loads((youtube / split / "meta.json").read_text())
        assert len(meta["videos"]) == count
        assert len(list((youtube / split / "JPEGImages").iterdir())) == count


def test_davis_masks_are_palette_pngs_with_all_objects_in_frame_0(davis_root):
    palette = davis_palette().ravel().tolist()
    for i, seq in enumerate(["synth-000", "synth-001", "synth-002"]):
        for png in sorted((davis_root / "Annotations/480p" / seq).glob("*.png")):
            with Image.open(png) as image:
                assert image.mode == "P"
                assert image.getpalette()[: 3 * (K + 1)] == palette[: 3 * (K + 1)]
        frames, masks = read_davis_sequence(davis_root, seq)
        assert frames.shape == (T, *SIZE, 3) and masks.shape == (T, *SIZE)
        assert set(np.unique(masks)) <= set(range(K + 1))
        assert set(np.unique(masks[0])) - {0} == set(range(1, K + 1))
        video = render_video([0, i], T, SIZE, K, late_start=False)
        assert np.array_equal(masks, video.masks)
        assert np.abs(frames.astype(int) - video.frames).mean() < 8  # lossy JPEG (quality 90)


def test_youtube_train_layout_and_meta(youtube_root):
    meta = json.loads((youtube_root / "train/meta.json").read_text())
    assert sorted(meta["videos"]) == [f"synth{i:03d}" for i in range(5)]
    for vid, info in meta["videos"].items():
        jpgs = sorted(p.stem for p in (youtube_root / "train/JPEGImages" / vid).iterdir())
        pngs = sorted(p.stem for p in (youtube_root / "train/Annotations" / vid).iterdir())
        assert jpgs == pngs == FRAME_NAMES
        masks = [read_mask(youtube_root / "train/Annotations" / vid / f"{n}.png") for n in pngs]
        assert sorted(info["objects"]) == [str(k) for k in range(1, K + 1)]
        for obj, entry in info["objects"].items():
            assert entry["category"] in CATEGORIES
            seen = [n for n, m in zip(pngs, masks, strict=True) if (m == int(obj)).any()]
            assert entry["frames"] == seen


def test_youtube_valid_annotates_first_appearances_only(youtube_root):
    meta = json.loads((youtube_root / "valid/meta.json").read_text())
    assert list(meta["videos"]) == ["synth005"]
    objects = meta["videos"]["synth005"]["objects"]
    video = render_video([0, 5], T, SIZE, K, late_start=True)
    first = (object_areas(video.masks, K) > 0).argmax(0)
    jpgs = sorted(p.stem for p in (youtube_root / "valid/JPEGImages/synth005").iterdir())
    pngs = sorted(p.stem for p in (youtube_root / "valid/Annotations/synth005").iterdir())
    assert jpgs == FRAME_NAMES
    assert pngs == sorted({FRAME_NAMES[t] for t in first})
    assert len(pngs) >= 2  # frame 0 and the late object's entry
    for k in range(1, K + 1):
        assert objects[str(k)]["frames"] == FRAME_NAMES[first[k - 1] :]
    for name in pngs:
        mask = read_mask(youtube_root / "valid/Annotations/synth005" / f"{name}.png")
        new = {k for k in range(1, K + 1) if objects[str(k)]["frames"][0] == name}
        assert set(np.unique(mask)) - {0} == new
        t = FRAME_NAMES.index(name)
        assert np.array_equal(mask, np.where(np.isin(video.masks[t], list(new)), video.masks[t], 0))


def test_late_object_enters_and_leaving_object_exits():
    """The "hard" preset: in every video one object enters late (a sliver at frame 0 in the
    DAVIS layout) and another leaves."""
    for seed in range(6):
        video = render_video(seed, T, SIZE, K, late_start=True, preset="hard")
        area = object_areas(video.masks, K)
        late, leave = video.late_id - 1, video.leave_id - 1
        assert late != leave and late >= 0 and leave >= 0
        assert area[0, late] == 0 and area[1:, late].any()
        assert area[0, leave] > 0 and area[-2:, leave].sum() == 0 and video.exit_frame < T - 1
        sliver = render_video(seed, T, SIZE, K, late_start=False, preset="hard")
        area = object_areas(sliver.masks, K)
        entering = sliver.late_id - 1
        assert (area[0] > 0).all() and area[0, entering] < 0.6 * area[:, entering].max()


def test_davis_preset_starts_objects_late_only_in_youtube():
    """The "davis" preset makes no object leave or enter: every object is in frame 0 of the DAVIS
    layout (they leave the view only by their own drift, tests/data/test_motion.py); the
    YouTube-VOS layout's late object still enters late."""
    for seed in range(10):
        davis = render_video(seed, T, SIZE, K, late_start=False)
        assert davis.late_id == davis.leave_id == davis.exit_frame == 0
        assert (object_areas(davis.masks, K)[0] > 0).all()
        youtube = render_video(seed, T, SIZE, K, late_start=True)
        late = youtube.late_id - 1
        area = object_areas(youtube.masks, K)
        assert late >= 0 and youtube.leave_id == 0
        assert area[0, late] == 0 and area[1:, late].any() and (np.delete(area[0], late) > 0).all()


def test_objects_occlude_each_other():
    """The "hard" preset steers an object onto the leaving one in every video (at the "davis"
    preset's real-video speeds they meet only by chance)."""
    for seed in range(6):
        video = render_video(seed, T, SIZE, K, preset="hard")
        full, masks = video.full_masks, video.masks[:, None]
        ids = np.arange(1, K + 1)[None, :, None, None]
        assert not (masks == ids)[~full].any()  # visible pixels lie inside the full shape
        # pixels of an object's full shape that show another object: an object-object occlusion
        hidden_by_object = full & (masks != ids) & (masks > 0)
        assert hidden_by_object.any()
        visible = object_areas(video.masks, K)
        assert (visible < full.sum((2, 3))).any()


def test_distractor_is_background_but_looks_like_an_object():
    for seed in range(4):
        video = render_video(seed, T, SIZE, K)
        distractor = video.distractor_mask
        assert distractor[0].sum() >= 20
        assert (video.masks[distractor] == 0).all()
        frames = video.frames.astype(float)
        colour = frames[distractor].mean(0)
        source = frames[video.masks == video.distractor_of].mean(0)
        background = frames[(video.masks == 0) & ~distractor].mean(0)
        assert np.linalg.norm(colour - source) < 30
        assert np.linalg.norm(colour - source) < np.linalg.norm(colour - background)


@pytest.mark.parametrize("preset,scroll", [("hard", 2), ("davis", 0.3)])
def test_frames_are_textured_and_background_moves(preset, scroll):
    video = render_video(2, T, SIZE, K, preset=preset)
    frames = video.frames.astype(float)
    background = (video.masks == 0) & ~video.distractor_mask
    kernel = np.ones((5, 5), np.uint8)
    for t in range(T):
        assert video.background[t].std() > 15  # not a flat colour
        # away from shape edges, whose blended pixels would add spread to any colour
        core = cv2.erode(background[t].astype(np.uint8), kernel).astype(bool)
        assert np.ptp(np.percentile(frames[t][core], [10, 90], axis=0), axis=0).max() > 30
        for k in range(1, K + 1):
            inner = cv2.erode((video.masks[t] == k).astype(np.uint8), kernel).astype(bool)
            if inner.sum() > 30:
                assert frames[t][inner].std(0).max() > 8  # objects are textured too
    gray = [cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float64) for b in video.background]
    (dx, dy), _ = cv2.phaseCorrelate(gray[0], gray[-1])
    assert np.hypot(dx, dy) > scroll  # the background scrolls
    both = background[0] & background[-1]
    assert np.abs(frames[0] - frames[-1])[both].mean() > 5


@pytest.mark.parametrize("preset,shift,growth", [("hard", 3, 1.15), ("davis", 0.5, 1.02)])
def test_object_moves_and_changes_scale(preset, shift, growth):
    video = render_video(1, 12, (96, 128), 1, preset=preset)
    full = video.full_masks[:, 0]
    assert video.late_id == video.leave_id == 0 and full[0].any()
    ys, xs = np.nonzero(full[0])
    ye, xe = np.nonzero(full[-1])
    assert np.hypot(xs.mean() - xe.mean(), ys.mean() - ye.mean()) > shift
    interior = [t for t in range(12) if not (full[t, 0].any() or full[t, -1].any())]
    interior = [t for t in interior if not (full[t, :, 0].any() or full[t, :, -1].any())]
    areas = full[interior].sum((1, 2))
    assert len(interior) >= 2 and areas.max() > growth * areas.min()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"fmt": "coco"}, "fmt"),
        ({"num_videos": 0}, "num_videos"),
        ({"num_frames": 1}, "num_frames"),
        ({"size": (15, 64)}, "size"),
        ({"size": (64, 8)}, "size"),
        ({"size": (0, 64)}, "size"),
        ({"num_objects": 0}, "num_objects"),
        ({"num_objects": 21}, "num_objects"),
        ({"num_val": 0}, "num_val"),
        ({"num_val": 2}, "num_val"),  # of 1 video
    ],
)
def test_bad_arguments_raise(tmp_path, kwargs, name):
    args = {"fmt": "davis", "num_videos": 1, "num_frames": 2, "size": SIZE, "num_objects": 1}
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        write_dataset(tmp_path, seed=0, **args)
    assert not any(tmp_path.iterdir())  # nothing written
    if not kwargs.keys() & {"fmt", "num_videos", "num_val"}:
        with pytest.raises(ValueError, match=name):
            generate_video(0, args["num_frames"], args["size"], args["num_objects"])


def test_extreme_sizes_still_meet_the_spec():
    _, masks = generate_video(0, 2, (16, 16), 20, late_start=False)
    assert set(np.unique(masks[0])) == set(range(21))
