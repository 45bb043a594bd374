"""`vos-jax eval` / `eval.py` on bad input (issue 18): the ground truth given as results, outputs
inside the dataset, an --output that cannot be written, bad --workers. Each case: exit code 2, one
`error:` line naming the argument, nothing computed (every check comes before the evaluation) and
every file under the test's folder (dataset, results, outputs) unchanged."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.metrics.eval_cases import (
    assert_one_error_line,
    imperfect,
    make_davis,
    make_results,
    write_result,
)
from tests.reliability.files import assert_unchanged, snapshot
from vos_jax.cli import main
from vos_jax.io.masks import read_mask

GT = Path("davis/Annotations/480p")


def _unwritable(tmp: Path) -> Path:
    """A folder this process cannot write in (root ignores mode bits: sysfs refuses it too)."""
    if os.geteuid() != 0:
        folder = tmp / "locked"
        folder.mkdir()
        folder.chmod(0o555)
        return folder / "out"
    probe = Path("/sys/vos_jax_eval_probe")
    try:
        probe.mkdir()
    except OSError:
        return probe / "out"
    probe.rmdir()
    pytest.skip("no unwritable folder here")


def _gt_copy(tmp: Path) -> Path:
    shutil.copytree(tmp / GT, tmp / "copy")
    return tmp / "copy"


def _gt_copy_new_first_frames(tmp: Path) -> Path:
    """Byte copies of the ground truth but frame 0 (which semi-supervised results copy anyway)."""
    folder = _gt_copy(tmp)
    for first in folder.glob("*/00000.png"):
        write_result(first, imperfect(read_mask(first)))
    return folder


def _gt_link(tmp: Path) -> Path:
    (tmp / "link").symlink_to(tmp / GT, target_is_directory=True)
    return tmp / "link"


def _results_in_dataset(tmp: Path) -> Path:
    return make_results(tmp / "davis" / "my_method", imperfect)


def _file(tmp: Path) -> Path:
    (tmp / "taken").write_text("not a folder\n")
    return tmp / "taken"


# (id, results(tmp), output(tmp) or None, extra args, message fragments)
CASES = [
    (
        "results-are-gt-folder",
        lambda t: t / GT,
        lambda t: t / "out",
        [],
        ["--results", "ground-truth folder"],
    ),
    (
        "results-are-gt-folder-default-output",
        lambda t: t / GT,
        None,
        [],
        ["--results", "inside the DAVIS root", "--output DIR"],
    ),
    ("results-link-to-gt", _gt_link, lambda t: t / "out", [], ["--results", "ground-truth folder"]),
    ("results-copy-gt", _gt_copy, lambda t: t / "out", [], ["--results", "byte-identical"]),
    (
        "results-copy-gt-but-frame-0",
        _gt_copy_new_first_frames,
        lambda t: t / "out",
        [],
        ["--results", "byte-identical"],
    ),
    (
        "unsupervised-copy-gt",
        lambda t: _unsup_copy(t),
        lambda t: t / "out",
        ["--task", "unsupervised"],
        ["--results", "byte-identical"],
    ),
    (
        "default-output-in-dataset",
        _results_in_dataset,
        None,
        [],
        ["--results", "inside the DAVIS root", "--output DIR"],
    ),
    (
        "output-in-dataset",
        lambda t: make_results(t / "results", imperfect),
        lambda t: t / "davis" / "scores",
        [],
        ["--output", "inside the DAVIS root"],
    ),
    (
        "output-is-davis-root",
        lambda t: make_results(t / "results", imperfect),
        lambda t: t / "davis",
        [],
        ["--output", "inside the DAVIS root"],
    ),
    (
        "output-is-a-file",
        lambda t: make_results(t / "results", imperfect),
        _file,
        [],
        ["--output", "taken", "is a file"],
    ),
    (
        "output-under-a-file",
        lambda t: make_results(t / "results", imperfect),
        lambda t: _file(t) / "sub",
        [],
        ["--output", "under the file", "taken"],
    ),
    (
        "output-unwritable",
        lambda t: make_results(t / "results", imperfect),
        _unwritable,
        [],
        ["--output", "cannot write"],
    ),
    (
        "workers-0",
        lambda t: make_results(t / "results", imperfect),
        lambda t: t / "out",
        ["--workers", "0"],
        ["--workers", "expected an integer >= 1"],
    ),
    (
        "workers-negative",
        lambda t: make_results(t / "results", imperfect),
        lambda t: t / "out",
        ["--workers", "-1"],
        ["--workers", "expected an integer >= 1"],
    ),
]


@pytest.mark.parametrize(
    "results,output,extra,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_eval_input_is_one_error_line_before_any_work(
    tmp_path, capsys, monkeypatch, results, output, extra, fragments
):
    task = extra[1] if extra[:1] == ["--task"] else "semi-supervised"
    make_davis(tmp_path / "davis", task=task)
    results_dir = results(tmp_path)
    output_args = ["--output", str(output(tmp_path))] if output else []
    before = snapshot(tmp_path)

    def computed(*args):
        raise AssertionError("evaluated before every input was checked")

    monkeypatch.setattr("vos_jax.metrics.evaluation.evaluate_sequence", computed)
    argv = ["eval", "--davis_root", str(tmp_path / "davis"), "--results", str(results_dir)]
    argv += [*output_args, "--workers", "1", *extra]  # a later --workers wins
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert_one_error_line(err, *fragments)
    assert_unchanged(before, tmp_path)


def _unsup_copy(tmp: Path) -> Path:
    shutil.copytree(tmp / "davis/Annotations_unsupervised/480p", tmp / "copy")
    return tmp / "copy"


def test_results_that_differ_from_the_ground_truth_on_one_frame_are_scored(tmp_path, capsys):
    """The copy check is not a false alarm: one re-drawn frame makes them results."""
    make_davis(tmp_path / "davis")
    results = _gt_copy(tmp_path)
    last_evaluated = results / "beta" / "00004.png"
    write_result(last_evaluated, imperfect(read_mask(last_evaluated)))
    argv = ["eval", "--davis_root", str(tmp_path / "davis"), "--results", str(results)]
    assert main([*argv, "--output", str(tmp_path / "out"), "--workers", "1"]) == 0
    assert (tmp_path / "out" / "global_results-val.csv").is_file()
    assert not list((tmp_path / "davis").rglob("*.csv"))
    capsys.readouterr()
