"""`eval.py` / `vos-jax eval` on bad input (vos_jax.metrics.report and the CLI): one error line,
exit code 2, nothing written, existing outputs never replaced without --overwrite; once as a
real `eval.py` subprocess."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.metrics.eval_cases import (
    GLOBAL_HEADER,
    REPO,
    H,
    W,
    assert_one_error_line,
    gt_frame,
    make_davis,
    make_results,
    read_csv,
    run_eval,
    written_reports,
)
from vos_jax.cli import main
from vos_jax.io.masks import write_mask


def _missing_frame(davis, results):
    path = results / "alpha" / "00003.png"
    path.unlink()
    return [], [str(path)]


def _wrong_size(davis, results):
    path = results / "beta" / "00002.png"
    write_mask(path, np.zeros((H - 10, W - 10), np.uint8))
    return [], [str(path)]


def _rgb_png(davis, results):
    path = results / "alpha" / "00001.png"
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[5:18, 4:18] = (128, 0, 0)  # the palette colour of id 1, but as RGB
    Image.fromarray(rgb, mode="RGB").save(path)
    return [], [str(path)]


def _id_above_object_count(davis, results):
    ids = gt_frame(0, 2)
    ids[0:3, 0:3] = 3  # the first ground-truth frame has only objects 1 and 2
    write_mask(results / "alpha" / "00002.png", ids)
    # The protocol error names the sequence's results folder (not the frame).
    return [], [str(results / "alpha")]


def _unknown_sequence(davis, results):
    return ["--sequences", "nope"], ["nope"]


def _empty_results(davis, results):
    for png in results.glob("*/*.png"):
        png.unlink()
    return [], [str(results)]


def _missing_results_folder(davis, results):
    missing = results.parent / "no_such_results"
    return ["--results", str(missing)], [str(missing)]


def _missing_imagesets(davis, results):
    path = davis / "ImageSets" / "2017" / "val.txt"
    path.unlink()
    return [], [str(path)]


def _bad_metric(davis, results):
    return ["--metrics", "X"], ["--metrics"]


@pytest.mark.parametrize(
    "corrupt",
    [
        _missing_frame,
        _wrong_size,
        _rgb_png,
        _id_above_object_count,
        _unknown_sequence,
        _empty_results,
        _missing_results_folder,
        _missing_imagesets,
        _bad_metric,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_bad_semisupervised_input_exits_2_with_one_error_line_and_writes_nothing(
    semi, capsys, corrupt
):
    davis, results, out = semi
    extra, expected = corrupt(davis, results)
    code, _, err = run_eval(capsys, davis, results, "--output", str(out), *extra)
    assert code == 2
    assert_one_error_line(err, *expected)
    assert not written_reports(out, results)


def test_bad_input_default_output_writes_nothing_into_results(semi, capsys):
    davis, results, _ = semi
    (results / "beta" / "00004.png").unlink()
    code, _, err = run_eval(capsys, davis, results)
    assert code == 2
    assert_one_error_line(err, str(results / "beta" / "00004.png"))
    assert not written_reports(results)


def test_more_than_20_proposals_is_rejected_in_unsupervised(tmp_path, capsys):
    davis = make_davis(tmp_path / "davis", task="unsupervised")
    results = make_results(tmp_path / "results")
    ids = gt_frame(1, 0)
    ids[0:2, 0:2] = 21
    write_mask(results / "beta" / "00000.png", ids)
    out = tmp_path / "out"
    code, _, err = run_eval(capsys, davis, results, "--task", "unsupervised", "--output", str(out))
    assert code == 2
    assert_one_error_line(err, str(results / "beta"), "21")
    assert not written_reports(out, results)


def test_20_proposals_are_accepted_in_unsupervised(tmp_path, capsys):
    davis = make_davis(tmp_path / "davis", task="unsupervised")
    results = make_results(tmp_path / "results")
    ids = gt_frame(1, 0)
    ids[0:2, 0:2] = 20  # a stray 20th proposal: allowed, and it matches no object
    write_mask(results / "beta" / "00000.png", ids)
    out = tmp_path / "out"
    code, _, err = run_eval(capsys, davis, results, "--task", "unsupervised", "--output", str(out))
    assert code == 0, err
    rows = read_csv(out / "per-sequence_results-val.csv")
    assert [r[0] for r in rows[1:]] == ["alpha_1", "alpha_2", "beta_1", "beta_2"]


def test_eval_script_subprocess_exit_code_and_stderr(semi):
    davis, results, out = semi
    missing = results / "alpha" / "00003.png"
    missing.unlink()
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "eval.py"),
            "--davis_root",
            str(davis),
            "--results",
            str(results),
            "--output",
            str(out),
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert_one_error_line(proc.stderr, str(missing))
    assert proc.stdout == ""
    assert not written_reports(out, results)


def test_argparse_level_errors_follow_the_one_line_contract(semi, capsys):
    davis, results, out = semi
    try:
        code = main(
            ["eval", "--davis_root", str(davis), "--results", str(results), "--task", "bogus"]
        )
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert_one_error_line(err, "--task")


# ---------------------------------------------------------------------------------- overwrite


def test_existing_outputs_are_not_overwritten_without_flag(semi, capsys):
    davis, results, _ = semi
    code, _, err = run_eval(capsys, davis, results)  # default output: the results folder
    assert code == 0, err
    glob_csv = results / "global_results-val.csv"
    others = [results / "per-sequence_results-val.csv", results / "results-val.json"]
    assert glob_csv.is_file() and all(p.is_file() for p in others)

    glob_csv.write_text("tampered\n")
    before = {p: p.read_bytes() for p in others}
    code, stdout, err = run_eval(capsys, davis, results)
    assert code == 2
    assert_one_error_line(err, str(glob_csv), "--overwrite")
    assert glob_csv.read_text() == "tampered\n"
    assert {p: p.read_bytes() for p in others} == before
    assert not list(results.glob("*.tmp"))

    code, _, err = run_eval(capsys, davis, results, "--overwrite")
    assert code == 0, err
    rows = read_csv(glob_csv)
    assert ",".join(rows[0]) == GLOBAL_HEADER
    assert rows[1][0] == "1.000"


def test_any_single_existing_output_blocks_the_run(semi, capsys):
    davis, results, out = semi
    out.mkdir()
    (out / "results-val.json").write_text("{}\n")
    code, _, err = run_eval(capsys, davis, results, "--output", str(out))
    assert code == 2
    assert_one_error_line(err, str(out / "results-val.json"))
    assert (out / "results-val.json").read_text() == "{}\n"
    assert not (out / "global_results-val.csv").exists()


# ------------------------------------------------------------------------ protocol details
