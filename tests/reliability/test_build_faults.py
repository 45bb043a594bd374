"""`vos-jax build-dataset` into a data dir that already holds a build (issue 18). The build records
its source (a fingerprint of --manual_dir's files) beside the dataset: the same source again is a
no-op that says so; another or a changed source is refused (exit 2, one `error:` line naming both)
unless --overwrite, which replaces the old build only once the new one succeeded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.reliability.files import assert_unchanged, snapshot
from vos_jax.cli import main
from vos_jax.data import synthetic

CONFIG = Path("davis_vos/2017_480p")


def _build(manual: Path, data: Path, *extra: str) -> int:
    argv = ["build-dataset", "davis_vos", "--config", "2017_480p", "--manual_dir", str(manual)]
    return main([*argv, "--data_dir", str(data), *extra])


def _manual(root: Path, videos: int) -> Path:
    return synthetic.write_dataset(root, "davis", videos, 3, (32, 48), 2, seed=videos)


@pytest.fixture
def case(tmp_path, capsys):
    """(manual dir, data dir) of a build made from it (a child process: about a second)."""
    manual = _manual(tmp_path / "manual", 2)
    assert _build(manual, tmp_path / "data") == 0
    assert capsys.readouterr().out.startswith("built davis_vos/2017_480p")
    return manual, tmp_path / "data"


def _other_source(tmp: Path, manual: Path) -> Path:
    return _manual(tmp / "other", 3)


def _changed_source(tmp: Path, manual: Path) -> Path:
    frame = next(manual.glob("JPEGImages/480p/*/00001.jpg"))
    os.utime(frame, ns=(frame.stat().st_atime_ns, frame.stat().st_mtime_ns + 10**9))
    return manual


def _unknown_source(tmp: Path, manual: Path) -> Path:
    (tmp / "data" / CONFIG / "source.json").unlink()  # a build made before sources were kept
    return manual


def _empty_source(tmp: Path, manual: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


# (id, the --manual_dir to build from (tmp, the built one's copy), extra args, code, fragments)
CASES = [
    ("other-source", _other_source, [], 2, ["--data_dir", "built from", "other", "--overwrite"]),
    ("changed-source", _changed_source, [], 2, ["changed since", "--overwrite"]),
    ("unknown-source", _unknown_source, [], 2, ["unknown source", "--overwrite"]),
    (
        "overwrite-with-a-failing-build",
        _empty_source,
        ["--overwrite"],
        2,
        ["empty"],
    ),
]


@pytest.mark.parametrize(
    "source,extra,code,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_stale_or_foreign_build_is_refused_and_kept(
    case, tmp_path, capsys, source, extra, code, fragments
):
    manual, data = case
    new_manual = source(tmp_path, manual)
    before = snapshot(tmp_path)
    assert _build(new_manual, data, *extra) == code
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    if "--overwrite" in fragments:
        assert str(new_manual.resolve()) in lines[0]  # both sources named
        assert str(manual.resolve()) in lines[0] or "unknown" in lines[0]
    assert "built" not in captured.out
    assert_unchanged(before, tmp_path)
    assert not [p for p in data.iterdir() if p.name.startswith(".build-")]


def test_same_source_is_a_no_op_that_says_so(case, tmp_path, capsys):
    manual, data = case
    before = snapshot(tmp_path)
    assert _build(manual, data) == 0
    assert (
        "already built from the same --manual_dir files, nothing to do" in capsys.readouterr().out
    )
    assert_unchanged(before, tmp_path)


def test_overwrite_replaces_the_build_with_the_new_source(case, tmp_path, capsys):
    import tensorflow_datasets as tfds

    manual, data = case
    other = _manual(tmp_path / "other", 5)
    before = snapshot(manual, other)
    assert _build(other, data, "--overwrite") == 0
    assert capsys.readouterr().out.startswith("rebuilt davis_vos/2017_480p")
    assert_unchanged(before, manual, other)
    recorded = json.loads((data / CONFIG / "source.json").read_text())
    assert recorded["source"]["manual_dir"] == str(other.resolve())
    assert len(tfds.data_source(str(CONFIG), split="val", data_dir=str(data))) == 1  # 5 // 5
    assert len(tfds.data_source(str(CONFIG), split="train", data_dir=str(data))) == 4
    assert not [p for p in data.rglob("*") if p.name.startswith((".build-", ".2017_480p"))]
    assert _build(other, data) == 0  # and it is now the recorded source
    assert "nothing to do" in capsys.readouterr().out
