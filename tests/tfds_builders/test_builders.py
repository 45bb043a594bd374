"""davis_vos / youtube_vos TFDS builders: built and read back without TensorFlow.

Frames are compared as bytes (read with `vos_jax.data.tfds_decoders.RawBytes`, since
`SkipDecoding` fails for `Sequence(Image)` in `tfds.data_source`); masks as decoded ids against
`read_mask` of the files. Builds run as `python -m tfds_builders build` (via `build_dataset`).
"""

import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import tfds_builders
from tests.shared_data import DAVIS_MINI, REPO, shared_path
from tfds_builders import DatasetLayoutError
from vos_jax.data.build import build_dataset
from vos_jax.data.synthetic import write_dataset
from vos_jax.data.tfds_decoders import RawBytes
from vos_jax.io.masks import read_mask, write_mask

SIZE = (32, 48)
RAW = {"frames": RawBytes(), "masks": RawBytes()}


def _read_split(name: str, data_dir: Path, split: str) -> dict[str, tuple[Callable, dict]]:
    """{example name: (decode() -> decoded example, example with raw frame/mask bytes)}.

    Examples are decoded on demand: a 480p video decodes to ~1 MB per frame."""
    decoded = tfds.data_source(name, data_dir=data_dir, split=split, download=False)
    raw = tfds.data_source(name, data_dir=data_dir, split=split, decoders=RAW, download=False)
    return {r["name"].decode(): (partial(decoded.__getitem__, i), r) for i, r in enumerate(raw)}


def _check_video(ex: dict, raw: dict, frame_dir: Path, mask_of) -> set[int]:
    """Frames byte-equal to the files; masks equal to `mask_of(frame_name)` (None: no mask).

    Returns the ids seen in the masks."""
    names = [n.decode() for n in ex["frame_names"]]
    files = sorted(frame_dir.glob("*.jpg"))
    assert names == [p.stem for p in files]
    seen = set()
    for t, path in enumerate(files):
        assert raw["frames"][t] == path.read_bytes()
        frame, mask = ex["frames"][t], ex["masks"][t]
        assert frame.dtype == np.uint8 and frame.shape == (ex["height"], ex["width"], 3)
        if t == 0:  # TFDS decodes with OpenCV: same pixels as PIL up to IDCT rounding
            assert np.abs(frame.astype(int) - np.asarray(Image.open(path))).mean() < 1.0
        assert mask.dtype == np.uint8 and mask.shape == (ex["height"], ex["width"], 1)
        expected = mask_of(path.stem)
        assert bool(ex["has_mask"][t]) == (expected is not None)
        expected = np.zeros(mask.shape[:2], np.uint8) if expected is None else expected
        np.testing.assert_array_equal(mask[..., 0], expected)
        seen |= set(np.unique(expected).tolist())
    ids = sorted(seen - {0, 255})
    assert [int(i) for i in ex["object_ids"]] == ids and ex["num_objects"] == len(ids)
    return seen


def _check_davis(data_dir: Path, root: Path, config: str, split: str, year: str, grey=False):
    """Every example of a davis_vos split against the DAVIS tree `root`."""
    examples = _read_split(f"davis_vos/{config}", data_dir, split)
    listed = (root / "ImageSets" / year / f"{split.replace('_', '-')}.txt").read_text().split()
    assert sorted(examples) == sorted(listed)  # stored in key-hash order
    for seq, (decode, raw) in examples.items():
        ann = root / "Annotations" / "480p" / seq

        def mask_of(stem, ann=ann):
            path = ann / f"{stem}.png"
            return read_mask(path, allow_grayscale=grey) if path.is_file() else None

        _check_video(decode(), raw, root / "JPEGImages" / "480p" / seq, mask_of)
    return examples


@pytest.fixture(scope="module")
def davis_built(tmp_path_factory):
    """Synthetic DAVIS (2 train, 1 val, 1 test-dev sequence with only its first mask) + build."""
    tmp = tmp_path_factory.mktemp("davis")
    root = write_dataset(tmp / "manual" / "DAVIS", "davis", 3, 4, SIZE, 2, seed=1)
    mask_path = root / "Annotations/480p/synth-000/00001.png"
    ids = read_mask(mask_path)
    ids[:2] = 255  # a void band: kept as 255 in 2017, dropped in 2016, never an object id
    write_mask(mask_path, ids)
    for sub in ("JPEGImages", "Annotations"):  # test-dev: a copy of synth-002, frame 0 annotated
        shutil.copytree(root / sub / "480p/synth-002", root / sub / "480p/td-000")
    for path in (root / "Annotations/480p/td-000").glob("0000[1-9].png"):
        path.unlink()
    (root / "ImageSets/2017/test-dev.txt").write_text("td-000\n")
    data = tmp / "data"
    assert build_dataset("davis_vos", "2017_480p", tmp / "manual", data) == [
        "test_dev",
        "train",
        "val",
    ]
    return root, data


def test_no_tensorflow_and_names():
    with pytest.raises(ImportError):
        import tensorflow  # noqa: F401
    assert set(tfds_builders.BUILDERS) == {"davis_vos", "youtube_vos", "supervisely_person"}
    assert tfds.builder_cls("davis_vos") is tfds_builders.DavisVos
    assert tfds.builder_cls("youtube_vos") is tfds_builders.YoutubeVos
    assert tfds.builder_cls("davis") is not tfds_builders.DavisVos  # TFDS's own stays as is


def test_davis_synthetic_roundtrip(davis_built):
    root, data = davis_built
    for split in ("train", "val"):
        examples = _check_davis(data, root, "2017_480p", split, "2017")
        assert all(all(raw["has_mask"]) for _, raw in examples.values())
    train = _check_davis(data, root, "2017_480p", "train", "2017")
    assert 255 in train["synth-000"][0]()["masks"][1]  # void kept as is
    ((_, ex),) = _check_davis(data, root, "2017_480p", "test_dev", "2017").values()
    assert [bool(h) for h in ex["has_mask"]] == [True, False, False, False]


def test_davis_2016_from_palette_masks(davis_built, tmp_path):
    root, _ = davis_built
    build_dataset("davis_vos", "2016_480p", root, tmp_path)  # manual dir = the DAVIS folder
    examples = _read_split("davis_vos/2016_480p", tmp_path, "train")
    for decode, _ in examples.values():
        ex = decode()
        assert set(np.unique(np.stack(ex["masks"])).tolist()) == {0, 1}
        assert list(ex["object_ids"]) == [1]
    ids = read_mask(root / "Annotations/480p/synth-000/00001.png")
    expected = ((ids > 0) & (ids != 255)).astype(np.uint8)  # several ids -> 1, void -> 0
    np.testing.assert_array_equal(examples["synth-000"][0]()["masks"][1][..., 0], expected)


def test_davis_read_in_fresh_process(davis_built):
    _, data = davis_built
    code = (
        "import tensorflow_datasets as tfds, tfds_builders; "
        f"ds = tfds.data_source('davis_vos/2017_480p', data_dir={str(data)!r}, split='val'); "
        "print(len(ds), ds[0]['name'].decode(), ds[0]['frames'][0].shape)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "synth-002", "(32,", "48,", "3)"]


def test_tfds_source_reads_without_the_builders(davis_built):
    """vos_jax reads a built dataset from its files: tfds_builders is never imported."""
    _, data = davis_built
    code = (
        "import sys; from vos_jax.data.sources import TfdsVideoSource; "
        f"source = TfdsVideoSource('davis_vos/2017_480p', 'val', {str(data)!r}); "
        "record = source[0]; "
        "print(len(source), record.name, type(record.frames[0]).__name__, "
        "[m for m in sys.modules if m.startswith('tfds_builders')])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "synth-002", "bytes", "[]"]


def test_tfds_source_names_a_missing_dataset(tmp_path):
    from vos_jax.data.sources import TfdsVideoSource

    with pytest.raises(FileNotFoundError, match="davis_vos/2017_480p: no prepared TFDS dataset"):
        TfdsVideoSource("davis_vos/2017_480p", "val", tmp_path)


def test_skip_decoding_fails_for_sequences(davis_built):
    """Pins TFDS behaviour that RawBytes works around (if this fails, SkipDecoding works)."""
    _, data = davis_built
    skip = {"frames": tfds.decode.SkipDecoding()}
    ds = tfds.data_source("davis_vos/2017_480p", data_dir=data, split="val", decoders=skip)
    with pytest.raises(AttributeError, match="decode_batch_example_np"):
        ds[0]


def test_davis_from_official_zip(davis_built, tmp_path):
    root, _ = davis_built
    manual = tmp_path / "manual"
    manual.mkdir()
    with zipfile.ZipFile(manual / "DAVIS-2017-trainval-480p.zip", "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "td-000" not in path.parts and path.name != "test-dev.txt":
                archive.write(path, Path("DAVIS") / path.relative_to(root))
    assert build_dataset("davis_vos", "2017_480p", manual, tmp_path / "data") == ["train", "val"]
    extracted = tmp_path / "data/downloads/extracted/davis_2017_480p/DAVIS"
    _check_davis(tmp_path / "data", extracted, "2017_480p", "val", "2017")


def test_davis_mini_real(tmp_path):
    root = shared_path(DAVIS_MINI) / "DAVIS"
    assert build_dataset("davis_vos", "2017_480p", root.parent, tmp_path) == ["val"]
    examples = _check_davis(tmp_path, root, "2017_480p", "val", "2017")
    assert len(examples) == 5
    for _, raw in examples.values():
        assert (raw["height"], raw["width"]) == (480, 854) and list(raw["object_ids"]) == [1]


def test_davis_2016_grayscale_release(tmp_path):
    mini = shared_path(DAVIS_MINI)
    root = tmp_path / "manual" / "DAVIS"
    grey = mini / "davis2016-format/Annotations/480p/blackswan"
    shutil.copytree(grey, root / "Annotations/480p/blackswan")
    shutil.copytree(mini / "DAVIS/JPEGImages/480p/blackswan", root / "JPEGImages/480p/blackswan")
    (root / "ImageSets/2016").mkdir(parents=True)
    (root / "ImageSets/2016/val.txt").write_text("blackswan\n")
    assert Image.open(next(grey.glob("*.png"))).mode == "L"
    assert build_dataset("davis_vos", "2016_480p", tmp_path / "manual", tmp_path / "d") == ["val"]
    ((decode, _),) = _check_davis(tmp_path / "d", root, "2016_480p", "val", "2016", True).values()
    assert set(np.unique(np.stack(decode()["masks"])).tolist()) == {0, 1}


def test_davis_2016_release_image_sets(tmp_path):
    """The 2016 release lists frame/mask path pairs in ImageSets/480p/<split>.txt."""
    root = write_dataset(tmp_path / "manual" / "DAVIS", "davis", 2, 3, SIZE, 2, seed=4)
    shutil.rmtree(root / "ImageSets/2016")
    pairs = [
        f"/JPEGImages/480p/synth-001/{t:05d}.jpg /Annotations/480p/synth-001/{t:05d}.png"
        for t in range(3)
    ]
    (root / "ImageSets/480p").mkdir()
    (root / "ImageSets/480p/val.txt").write_text("\n".join(pairs) + "\n")
    assert build_dataset("davis_vos", "2016_480p", tmp_path / "manual", tmp_path / "d") == ["val"]
    assert list(_read_split("davis_vos/2016_480p", tmp_path / "d", "val")) == ["synth-001"]


def test_dummy_data_builds(tmp_path):
    """The builders' dummy_data (the `tfds new` test data) builds and reads back."""
    for name, config, counts in (
        ("davis_vos", "2017_480p", {"train": 1, "val": 1}),
        ("youtube_vos", "2018", {"train": 1, "valid": 1}),
    ):
        dummy = Path(tfds_builders.__file__).parent / name / "dummy_data"
        assert build_dataset(name, config, dummy, tmp_path) == sorted(counts)
        for split, n in counts.items():
            assert len(_read_split(f"{name}/{config}", tmp_path, split)) == n


def _check_youtube(data: Path, root: Path, config: str, split: str, frame_root: Path) -> dict:
    """Every example of a youtube_vos split against the split folder and its meta.json."""
    meta = json.loads((root / split / "meta.json").read_text())["videos"]
    examples = _read_split(f"youtube_vos/{config}", data, split)
    assert sorted(examples) == sorted(meta) == sorted(p.name for p in frame_root.iterdir())
    for vid, (decode, raw) in examples.items():
        ann = root / split / "Annotations" / vid
        ex = decode()

        def mask_of(stem, ann=ann):
            path = ann / f"{stem}.png"
            return read_mask(path) if path.is_file() else None

        _check_video(ex, raw, frame_root / vid, mask_of)
        names = [n.decode() for n in ex["frame_names"]]
        objects = sorted(meta[vid]["objects"].items(), key=lambda kv: int(kv[0]))
        expected = [(int(k), o["category"], names.index(min(o["frames"]))) for k, o in objects]
        got = zip(*(ex["objects"][k] for k in ("id", "category", "first_frame")), strict=True)
        assert [(int(i), c.decode(), int(f)) for i, c, f in got] == expected
        assert all(ex["has_mask"][f] for _, _, f in expected)
    return examples


@pytest.fixture(scope="module")
def youtube_built(tmp_path_factory):
    """Synthetic YouTube-VOS (2 train, 1 valid video; valid ids 1, 3, 7) + valid_all_frames."""
    tmp = tmp_path_factory.mktemp("youtube")
    root = write_dataset(tmp / "manual", "youtube", 3, 4, SIZE, 3, seed=3)
    meta_path = root / "valid/meta.json"
    meta = json.loads(meta_path.read_text())
    objects = meta["videos"]["synth002"]["objects"]
    objects["7"] = objects.pop("2")  # non-contiguous ids, as in YouTube-VOS
    meta_path.write_text(json.dumps(meta))
    for path in (root / "valid/Annotations/synth002").glob("*.png"):
        ids = read_mask(path)
        write_mask(path, np.where(ids == 2, 7, ids))
    # all frames: the 5-fps frames plus the ones between them (copies suffice here)
    frames = root / "valid_all_frames/JPEGImages/synth002"
    shutil.copytree(root / "valid/JPEGImages/synth002", frames)
    for path in sorted(frames.glob("*.jpg")):
        shutil.copy(path, frames / f"{int(path.stem) + 2:05d}.jpg")
    data = tmp / "data"
    assert build_dataset("youtube_vos", "2019", root, data) == ["train", "valid"]
    assert build_dataset("youtube_vos", "2019_all_frames", root, data) == ["valid"]
    return root, data


def test_youtube_synthetic_roundtrip(youtube_built):
    root, data = youtube_built
    train = _check_youtube(data, root, "2019", "train", root / "train/JPEGImages")
    assert all(all(raw["has_mask"]) for _, raw in train.values())
    valid = _check_youtube(data, root, "2019", "valid", root / "valid/JPEGImages")
    ((_, ex),) = valid.values()
    assert list(ex["object_ids"]) == [1, 3, 7] and not all(ex["has_mask"])


def test_youtube_categories_select_videos_and_objects(youtube_built):
    """`categories` keeps the videos with objects of a category, and only those objects, as
    meta.json lists them; DAVIS has no categories and says so."""
    from vos_jax.data.pipeline import MakeSample, SampleConfig
    from vos_jax.data.sources import TfdsVideoSource, decode_mask

    root, data = youtube_built
    meta = json.loads((root / "train/meta.json").read_text())["videos"]
    for cat in sorted({o["category"] for v in meta.values() for o in v["objects"].values()}):
        source = TfdsVideoSource("youtube_vos/2019", "train", data, categories=(cat,))
        want = {
            name: tuple(sorted(int(k) for k, o in v["objects"].items() if o["category"] == cat))
            for name, v in meta.items()
        }
        assert {r.name: r.keep_ids for r in source} == {n: k for n, k in want.items() if k}
        for record in source:  # each mask with only the kept objects, as they were
            for t in np.flatnonzero(record.annotated):
                ids = decode_mask(record.masks[t])
                kept = MakeSample(SampleConfig())._mask(record, t)
                chosen = np.isin(ids, record.keep_ids) | (ids == 255)
                np.testing.assert_array_equal(kept, np.where(chosen, ids, 0))
    with pytest.raises(ValueError, match="no video of youtube_vos/2019 has objects"):
        TfdsVideoSource("youtube_vos/2019", "train", data, categories=("zebra",))
    named = TfdsVideoSource("youtube_vos/2019", "train", data, sequences=("synth001",))
    assert [r.name for r in named] == ["synth001"] and named[0].keep_ids is None


def test_davis_has_no_categories(davis_built):
    from vos_jax.data.sources import TfdsVideoSource

    with pytest.raises(ValueError, match="davis_vos/2017_480p has no object categories"):
        TfdsVideoSource("davis_vos/2017_480p", "val", davis_built[1], categories=("person",))


def test_youtube_all_frames(youtube_built):
    root, data = youtube_built
    frame_root = root / "valid_all_frames/JPEGImages"
    ((_, ex),) = _check_youtube(data, root, "2019_all_frames", "valid", frame_root).values()
    assert len(ex["frame_names"]) == 8 and sum(ex["has_mask"]) < 4


def test_build_dataset_rejects_unknown_names(tmp_path):
    known = "davis_vos, supervisely_person, youtube_vos"
    with pytest.raises(ValueError, match=f"unknown dataset .davis.*{known}"):
        build_dataset("davis", "2017_480p", tmp_path, tmp_path)
    with pytest.raises(ValueError, match="unknown config '2017' of davis_vos.*2017_480p"):
        build_dataset("davis_vos", "2017", tmp_path, tmp_path)
    with pytest.raises(ValueError, match=f"{tmp_path / 'nope'}: manual dir not found"):
        build_dataset("davis_vos", "2017_480p", tmp_path / "nope", tmp_path)


def _command(*args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "tfds_builders", *args]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)


def test_build_command_one_line_errors_and_splits_line(tmp_path):
    """`python -m tfds_builders build`: exit 2 and one `error:` line on bad input; the split
    names as the last stdout line on success."""
    manual = write_dataset(tmp_path / "manual", "davis", 2, 3, SIZE, 2, seed=0)
    data = ["--data_dir", str(tmp_path / "data")]
    for argv, message in (
        (
            ["build", "davis", "--config", "2017_480p", "--manual_dir", str(manual)],
            "unknown dataset",
        ),
        (["build", "davis_vos", "--config", "x", "--manual_dir", str(manual)], "unknown config"),
        (
            ["build", "davis_vos", "--config", "2017_480p", "--manual_dir", str(tmp_path / "no")],
            f"{tmp_path / 'no'}: manual dir not found",
        ),
        (["build", "davis_vos", "--manual_dir", str(manual)], "--config"),
        (["nope"], "invalid choice"),
    ):
        done = _command(*argv, *data)
        assert done.returncode == 2, done.stderr[-2000:]
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    done = _command(
        "build", "davis_vos", "--config", "2017_480p", "--manual_dir", str(manual), *data
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"splits": ["train", "val"]}


def _assert_not_prepared(name: str, config: str, data: Path, split: str) -> None:
    """A failed build leaves nothing TFDS would read as a complete dataset."""
    assert not tfds_builders.BUILDERS[name](config=config, data_dir=data).is_prepared()
    with pytest.raises((KeyError, ValueError, FileNotFoundError)):
        tfds.data_source(f"{name}/{config}", data_dir=data, split=split, download=False)
    assert not [p for p in data.rglob("*") if "incomplete" in p.name]


def test_missing_manual_dir_through_tfds(tmp_path):
    builder = tfds_builders.DavisVos(config="2017_480p", data_dir=tmp_path / "data")
    config = tfds.download.DownloadConfig(manual_dir=str(tmp_path / "absent"))
    with pytest.raises(DatasetLayoutError, match="(?s)absent does not exist.*Expected layout"):
        builder.download_and_prepare(download_config=config)
    _assert_not_prepared("davis_vos", "2017_480p", tmp_path / "data", "val")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


_FRAME = "JPEGImages/480p/synth-001/00001.jpg"
_MASK = "Annotations/480p/synth-001/00002.png"
DAVIS_CASES = {  # name: (corrupt(root), path relative to root named in the error, message)
    "layout": (lambda r: shutil.rmtree(r / "ImageSets"), "..", "found neither a DAVIS tree"),
    "truncated": (lambda r: _truncate(r / _FRAME), _FRAME, "not a readable JPEG"),
    "not_jpeg": (lambda r: Image.new("RGB", (48, 32)).save(r / _FRAME, "PNG"), _FRAME, "JPEG"),
    "mask_size": (lambda r: write_mask(r / _MASK, np.zeros((16, 48))), _MASK, "frame's size"),
    "no_masks": (
        lambda r: shutil.rmtree(r / "Annotations/480p/synth-000"),
        "Annotations/480p/synth-000",
        "expected the annotation folder",
    ),
    "missing_mask": (lambda r: (r / _MASK).unlink(), _MASK, "missing mask for frame"),
    "unlisted": (
        lambda r: (r / "ImageSets/2017/val.txt").write_text("synth-001\nghost\n"),
        "JPEGImages/480p/ghost",
        "frame folder is missing",
    ),
}


@pytest.mark.parametrize("case", sorted(DAVIS_CASES))
def test_davis_bad_input(tmp_path, case):
    corrupt, relative, message = DAVIS_CASES[case]
    root = write_dataset(tmp_path / "manual" / "DAVIS", "davis", 2, 3, SIZE, 2, seed=2)
    corrupt(root)
    with pytest.raises(ValueError, match=message) as err:
        build_dataset("davis_vos", "2017_480p", tmp_path / "manual", tmp_path / "data")
    assert str((root / relative).resolve()) in str(err.value)
    _assert_not_prepared("davis_vos", "2017_480p", tmp_path / "data", "val")


def _edit_meta(path: Path, edit) -> None:
    meta = json.loads(path.read_text())
    edit(meta["videos"])
    path.write_text(json.dumps({"videos": meta["videos"]}))


def _drop_splits(root: Path) -> None:
    for split in ("train", "valid"):
        shutil.rmtree(root / split)
    (root / "notes.txt").write_text("not a split")  # an empty manual dir is TFDS's own error


def _move_first_frame(videos: dict) -> None:
    videos["synth001"]["objects"]["1"]["frames"] = ["99999"]


YOUTUBE_CASES = {
    "layout": (lambda r: (r / "valid/meta.json").unlink(), "valid/meta.json", "missing"),
    "no_splits": (_drop_splits, "", "found no split folder"),
    "first_frame": (
        lambda r: _edit_meta(r / "valid/meta.json", _move_first_frame),
        "valid/meta.json",
        "starts at frame '99999', which is not among its frames",
    ),
    "bad_json": (lambda r: (r / "train/meta.json").write_text("{"), "train/meta.json", "JSON"),
    "video_without_frames": (
        lambda r: _edit_meta(r / "valid/meta.json", lambda v: v.update(ghost={"objects": {}})),
        "valid/JPEGImages/ghost",
        "listed in .*meta.json but has no frame folder",
    ),
    "unlisted_id": (
        lambda r: _edit_meta(r / "train/meta.json", lambda v: v["synth000"]["objects"].pop("1")),
        "train/Annotations/synth000/",
        r"object id\(s\) \[1\] are not listed",
    ),
    "truncated": (
        lambda r: _truncate(r / "valid/JPEGImages/synth001/00005.jpg"),
        "valid/JPEGImages/synth001/00005.jpg",
        "not a readable JPEG",
    ),
}


@pytest.mark.parametrize("case", sorted(YOUTUBE_CASES))
def test_youtube_bad_input(tmp_path, case):
    corrupt, relative, message = YOUTUBE_CASES[case]
    root = write_dataset(tmp_path / "manual", "youtube", 2, 3, SIZE, 2, seed=2)
    corrupt(root)
    with pytest.raises(ValueError, match=message) as err:
        build_dataset("youtube_vos", "2018", root, tmp_path / "data")
    assert str(root.resolve() / relative) in str(err.value)
    _assert_not_prepared("youtube_vos", "2018", tmp_path / "data", "train")
