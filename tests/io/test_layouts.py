"""vos_jax.io.layouts on small DAVIS and YouTube-VOS folders written by the synthetic dataset."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from vos_jax.data.synthetic import render_video, write_dataset
from vos_jax.io.layouts import (
    DavisLayout,
    LayoutError,
    YoutubeLayout,
    YoutubeObject,
    davis_resolution_folder,
    find_davis_root,
    list_frames,
    parse_image_set,
    read_davis_sequence,
)

T, SIZE, K = 3, (32, 48), 2
FRAMES = [f"{t:05d}" for t in range(T)]


def _raises(path: Path, message: str):
    """pytest.raises(LayoutError) whose message names `path` and contains `message`."""
    return pytest.raises(LayoutError, match=f"^{re.escape(str(path))}: .*{message}")


@pytest.fixture(scope="module")
def davis(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("davis") / "DAVIS", "davis", 3, T, SIZE, K, 0)


@pytest.fixture(scope="module")
def youtube(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("youtube"), "youtube", 3, T, SIZE, K, 0)


@pytest.fixture
def davis_copy(davis, tmp_path) -> Path:
    return Path(shutil.copytree(davis, tmp_path / "DAVIS"))


@pytest.fixture
def youtube_copy(youtube, tmp_path) -> Path:
    return Path(shutil.copytree(youtube, tmp_path / "youtube"))


def test_layout_error_is_a_value_error():
    assert issubclass(LayoutError, ValueError)


def test_list_frames(davis, tmp_path):
    folder = davis / "JPEGImages/480p/synth-000"
    assert list_frames(folder) == [folder / f"{n}.jpg" for n in FRAMES]
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/00000.png").touch()  # not a frame
    with _raises(tmp_path / "empty", "expected a folder of .jpg frames, found none"):
        list_frames(tmp_path / "empty")
    with _raises(tmp_path / "absent", "expected a folder of .jpg frames"):
        list_frames(tmp_path / "absent")


def test_parse_image_set(tmp_path):
    (tmp_path / "2017.txt").write_text("bear\n\n  dog \nbear\n")
    assert parse_image_set(tmp_path / "2017.txt") == ["bear", "dog"]
    pairs = [f"/JPEGImages/480p/cat/{t:05d}.jpg /Annotations/480p/cat/{t:05d}.png" for t in (0, 1)]
    (tmp_path / "2016.txt").write_text("\n".join([*pairs, pairs[0].replace("cat", "emu")]))
    assert parse_image_set(tmp_path / "2016.txt") == ["cat", "emu"]


def test_find_davis_root(davis, tmp_path):
    assert find_davis_root(davis) == davis
    assert find_davis_root(davis.parent) == davis  # the folder holding DAVIS/
    assert find_davis_root(tmp_path) is None


def test_davis_resolution_folder(davis_copy):
    assert davis_resolution_folder(davis_copy, "480p") == "480p"
    with _raises(davis_copy / "JPEGImages/Full-Resolution", "expected the Full-Resolution frame"):
        davis_resolution_folder(davis_copy, "Full-Resolution")
    (davis_copy / "JPEGImages/1080p").mkdir()  # the 2016 release's name
    assert davis_resolution_folder(davis_copy, "Full-Resolution") == "1080p"


def test_davis_paths(davis):
    layout = DavisLayout(davis)
    assert layout.root == davis and layout.resolution == "480p"
    assert layout.image_set_path("val") == davis / "ImageSets/2017/val.txt"
    assert layout.image_set_path("val", 2016) == davis / "ImageSets/2016/val.txt"
    assert layout.frames_dir("synth-001") == davis / "JPEGImages/480p/synth-001"
    assert layout.annotations_root() == davis / "Annotations/480p"
    assert layout.annotations_root("unsupervised") == davis / "Annotations_unsupervised/480p"
    assert layout.annotations_dir("synth-001") == davis / "Annotations/480p/synth-001"
    unsup = layout.annotations_dir("synth-001", "unsupervised")
    assert unsup == davis / "Annotations_unsupervised/480p/synth-001"
    assert layout.mask_path("synth-001", "00002") == davis / "Annotations/480p/synth-001/00002.png"
    assert layout.mask_path("synth-001", "00002", "unsupervised") == unsup / "00002.png"
    with pytest.raises(ValueError, match="task: expected one of"):
        layout.annotations_root("weakly-supervised")


def test_davis_sequences_and_files(davis):
    layout = DavisLayout(davis)
    assert layout.sequences("train") == ["synth-000", "synth-001"]
    assert layout.sequences() == layout.sequences("val", 2016) == ["synth-002"]
    assert layout.find_image_set("val") == davis / "ImageSets/2017/val.txt"
    assert layout.find_image_set("test-dev") is None
    frames = layout.frame_paths("synth-002")
    assert frames == [davis / f"JPEGImages/480p/synth-002/{n}.jpg" for n in FRAMES]
    masks = layout.mask_paths("synth-002")
    assert masks == [davis / f"Annotations/480p/synth-002/{n}.png" for n in FRAMES]
    assert layout.mask_paths("synth-002", "unsupervised")[0].parent.parent.name == "480p"
    assert layout.mask_paths("ghost") == []
    assert layout.first_mask_path("synth-002") == masks[0]
    layout.check_sequences(layout.sequences("train"))


def test_davis_image_set_errors_and_2016_release(davis_copy):
    layout = DavisLayout(davis_copy)
    with _raises(davis_copy / "ImageSets/2017/test-dev.txt", "sequence list not found"):
        layout.sequences("test-dev")
    shutil.rmtree(davis_copy / "ImageSets/2016")
    (davis_copy / "ImageSets/480p").mkdir()
    pair = "/JPEGImages/480p/synth-001/00000.jpg /Annotations/480p/synth-001/00000.png\n"
    (davis_copy / "ImageSets/480p/val.txt").write_text(pair)
    assert layout.find_image_set("val", 2016) == davis_copy / "ImageSets/480p/val.txt"
    assert layout.sequences("val", 2016) == ["synth-001"]
    assert layout.find_image_set("val", 2017) == davis_copy / "ImageSets/2017/val.txt"


def test_davis_missing_folders(davis_copy):
    layout = DavisLayout(davis_copy)
    with _raises(davis_copy / "JPEGImages/480p/ghost", "expected a folder of .jpg frames"):
        layout.frame_paths("ghost")
    with _raises(davis_copy / "Annotations/480p/ghost", "no first-frame annotation for 'ghost'"):
        layout.first_mask_path("ghost")
    with _raises(davis_copy / "JPEGImages/480p/ghost", "'ghost' is listed .* frame folder"):
        layout.check_sequences(["synth-000", "ghost"])
    shutil.rmtree(davis_copy / "Annotations/480p/synth-001")
    with _raises(davis_copy / "Annotations/480p/synth-001", "expected the annotation folder"):
        layout.check_sequences(["synth-001"])
    layout.check_sequences(["synth-001"], task="unsupervised")  # that ground truth is there


def test_read_davis_sequence(davis, davis_copy):
    frames, masks = read_davis_sequence(davis, "synth-001")
    video = render_video([0, 1], T, SIZE, K, late_start=False)
    assert frames.shape == (T, *SIZE, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(masks, video.masks)
    assert np.abs(frames.astype(int) - video.frames).mean() < 8  # JPEG quality 90
    with _raises(davis / "JPEGImages/480p/ghost", "expected a folder of .jpg frames"):
        read_davis_sequence(davis, "ghost")
    missing = davis_copy / "Annotations/480p/synth-001/00001.png"
    missing.unlink()
    with pytest.raises(ValueError, match=f"{re.escape(str(missing))}: mask file not found"):
        read_davis_sequence(davis_copy, "synth-001")


def test_youtube_paths(youtube):
    layout = YoutubeLayout(youtube, "valid")
    assert layout.root == youtube and layout.split_dir == youtube / "valid"
    assert layout.frames_root == youtube / "valid/JPEGImages"
    assert layout.annotations_root == youtube / "valid/Annotations"
    assert layout.meta_path == youtube / "valid/meta.json"
    assert layout.frames_dir("v") == youtube / "valid/JPEGImages/v"
    assert layout.annotations_dir("v") == youtube / "valid/Annotations/v"
    assert layout.mask_path("v", "00005") == youtube / "valid/Annotations/v/00005.png"
    all_frames = YoutubeLayout(youtube, "valid", all_frames=True)
    assert all_frames.frames_root == youtube / "valid_all_frames/JPEGImages"
    assert all_frames.annotations_root == layout.annotations_root  # annotations stay in valid/
    assert layout.exists() and not all_frames.exists()
    assert not YoutubeLayout(youtube, "test").exists()


def test_youtube_meta_and_files(youtube):
    train, valid = YoutubeLayout(youtube, "train"), YoutubeLayout(youtube, "valid")
    assert train.videos() == ["synth000", "synth001"] and valid.videos() == ["synth002"]
    meta = json.loads((youtube / "valid/meta.json").read_text())["videos"]["synth002"]
    objects = valid.meta()["synth002"]
    assert list(objects) == [1, 2] and all(isinstance(o, YoutubeObject) for o in objects.values())
    for k, obj in objects.items():
        listed = meta["objects"][str(k)]
        assert obj.id == k and obj.category == listed["category"]
        assert obj.frames == tuple(sorted(listed["frames"]))
    names = [f"{5 * t:05d}" for t in range(T)]
    assert [p.stem for p in train.frame_paths("synth000")] == names
    assert [p.stem for p in train.mask_paths("synth000")] == names  # train: every frame
    assert len(valid.mask_paths("synth002")) < T  # valid: where objects first appear
    assert train.unlisted_videos(["synth000"]) == ["synth001"]
    train.check()


def test_youtube_missing_files(youtube_copy):
    layout = YoutubeLayout(youtube_copy, "train")
    shutil.rmtree(youtube_copy / "train/Annotations/synth001")
    with _raises(layout.annotations_dir("synth001"), "'synth001' is listed in .*meta.json but"):
        layout.mask_paths("synth001")
    with _raises(layout.frames_dir("ghost"), "'ghost' is listed in .*meta.json but has no frame"):
        layout.frame_paths("ghost")
    for path, what in (
        (layout.meta_path, "the split's meta.json"),
        (layout.annotations_root, "annotation folders <video>/<frame>.png"),
        (layout.frames_root, "frame folders <video>/<frame>.jpg"),
    ):
        shutil.move(path, youtube_copy / "moved")
        with _raises(path, re.escape(f"missing; expected {what} here")):
            layout.meta()
        shutil.move(youtube_copy / "moved", path)


def test_youtube_bad_meta(youtube_copy):
    layout = YoutubeLayout(youtube_copy, "train")
    for text in ("{", '{"clips": {}}', '{"videos": []}'):
        layout.meta_path.write_text(text)
        with _raises(layout.meta_path, "expected JSON"):
            layout.meta()
    layout.meta_path.write_text(json.dumps({"videos": {"synth000": {"objects": {"one": {}}}}}))
    with _raises(layout.meta_path, "video 'synth000': expected 'objects'"):
        layout.meta()
