"""The rest of `vos-jax` on bad input (synth, portrait, bench, export, demo; train.py, segment,
eval, build-dataset and convert have their own files here): exit code 2, one `error:` line naming
the argument or file, and every file under the test's folder unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from tests.reliability.files import assert_unchanged, snapshot
from vos_jax.cli import main

# (argv with {tmp} for the test's folder, the message fragment)
CASES = {
    "synth: frames too small": (["synth", "--out", "{tmp}/new", "--size", "8x8"], "--size"),
    "synth: no objects": (["synth", "--out", "{tmp}/new", "--objects", "0"], "--objects"),
    "synth: --out is a file": (["synth", "--out", "{tmp}/file.txt"], "file.txt"),
    "synth: held out all": (
        ["synth", "--out", "{tmp}/new", "--videos", "2", "--val", "3"],
        "--val",
    ),
    "portrait: no such input": (
        ["portrait", "{tmp}/missing.mp4", "--out", "{tmp}/o.mp4"],
        "missing.mp4",
    ),
    "portrait: --out not .mp4": (
        ["portrait", "{tmp}/frames", "--out", "{tmp}/o.avi"],
        "expected an .mp4",
    ),
    "portrait: --out exists": (
        ["portrait", "{tmp}/frames", "--out", "{tmp}/done.mp4"],
        "--overwrite",
    ),
    "portrait: unknown effect": (
        ["portrait", "{tmp}/frames", "--out", "{tmp}/o.mp4", "--effect", "sparkle"],
        "sparkle",
    ),
    "portrait: unknown model": (
        ["portrait", "{tmp}/frames", "--out", "{tmp}/o.mp4", "--model", "{tmp}/nope"],
        "nope",
    ),
    "bench: unknown family": (["bench", "--family", "maskrcnn"], "--family"),
    "bench: batch 0": (["bench", "--family", "rvos", "--batch", "0"], "--batch"),
    "bench: plot not png": (["bench", "--family", "rvos", "--plot", "{tmp}/a.jpg"], "--plot"),
    "bench: bad size": (["bench", "--family", "rvos", "--size", "big"], "--size"),
    "export: no checkpoint": (
        ["export", "--checkpoint", "{tmp}/missing", "--size", "48x64"],
        "missing",
    ),
    "export: bad size": (["export", "--checkpoint", "{tmp}/missing", "--size", "4"], "--size"),
    "demo: no such config": (["demo", "--out", "{tmp}/demo", "--config", "{tmp}/no.py"], "no.py"),
    "demo: negative steps": (["demo", "--out", "{tmp}/demo", "--steps", "-1"], "--steps"),
}


@pytest.fixture
def folder(tmp_path):
    """A folder holding a file, two frames and a finished portrait video."""
    from PIL import Image

    (tmp_path / "file.txt").write_text("a file, not a folder")
    (tmp_path / "done.mp4").write_bytes(b"an earlier result")
    (tmp_path / "frames").mkdir()
    for t in range(2):
        Image.fromarray(np.full((32, 48, 3), 40 * t, np.uint8)).save(tmp_path / f"frames/{t}.png")
    return tmp_path


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_changes_nothing(case, folder, capsys):
    argv, fragment = CASES[case]
    before = snapshot(folder)
    code = main([a.format(tmp=folder) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert fragment.format(tmp=folder) in err[0], err
    assert_unchanged(before, folder)
