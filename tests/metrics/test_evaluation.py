"""End-to-end tests of `eval.py` / `vos-jax eval` (vos_jax.cli) on tiny synthetic DAVIS folders.

Every test builds its own ground truth and results under tmp_path with `write_mask`: two
sequences of six 40x60 frames, two rectangular objects each. The CLI runs in-process (with
`--workers 1`, except for the determinism test) and once as a real `eval.py` subprocess.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vos_jax.cli import main
from vos_jax.io.masks import write_mask

REPO = Path(__file__).resolve().parents[2]
H, W = 40, 60
SEQS = ("alpha", "beta")
N_FRAMES = 6
GLOBAL_HEADER = "J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay"
STATS = ("JM", "JR", "JD", "FM", "FR", "FD")
NUMBER = re.compile(r"^-?\d+\.\d{3}$")
ANNOTATIONS = {"semi-supervised": "Annotations", "unsupervised": "Annotations_unsupervised"}


# ----------------------------------------------------------------------------------- fixtures


def gt_frame(seq_index: int, t: int, objects: int = 2) -> np.ndarray:
    """[H, W] ids: object 1 moves right, object 2 moves down (both stay inside the frame)."""
    ids = np.zeros((H, W), np.uint8)
    x = 4 + 3 * t + 2 * seq_index
    ids[5:18, x : x + 14] = 1
    if objects >= 2:
        y = 20 + t + seq_index
        ids[y : y + 10, 35:52] = 2
    return ids


def imperfect(ids: np.ndarray) -> np.ndarray:
    """A plausible but wrong prediction: object 1 shifted 2 px right, object 2 cut in half."""
    out = np.zeros_like(ids)
    out[:, 2:][ids[:, :-2] == 1] = 1
    ys, xs = np.nonzero(ids == 2)
    if ys.size:
        keep = (ids == 2) & (np.arange(W)[None, :] < (xs.min() + xs.max()) // 2)
        out[keep] = 2
    return out


def make_davis(
    root: Path,
    task: str = "semi-supervised",
    objects: int = 2,
    grayscale_2016: bool = False,
    frames: int = N_FRAMES,
) -> Path:
    """Ground truth + ImageSets/2017/val.txt under `root`; returns root."""
    for s, seq in enumerate(SEQS):
        folder = root / ANNOTATIONS[task] / "480p" / seq
        for t in range(frames):
            ids = gt_frame(s, t, objects)
            path = folder / f"{t:05d}.png"
            if grayscale_2016:
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.where(ids > 0, 255, 0).astype(np.uint8), mode="L").save(path)
            else:
                write_mask(path, ids)
    sets = root / "ImageSets" / "2017"
    sets.mkdir(parents=True, exist_ok=True)
    (sets / "val.txt").write_text("".join(f"{seq}\n" for seq in SEQS))
    return root


def make_results(
    root: Path, transform=lambda ids: ids, objects: int = 2, frames: int = N_FRAMES
) -> Path:
    """Result PNGs for every frame of every sequence: transform(ground-truth ids)."""
    for s, seq in enumerate(SEQS):
        for t in range(frames):
            write_mask(root / seq / f"{t:05d}.png", transform(gt_frame(s, t, objects)))
    return root


@pytest.fixture
def semi(tmp_path):
    """(davis_root, results, output) with perfect semi-supervised results."""
    davis = make_davis(tmp_path / "davis")
    results = make_results(tmp_path / "results")
    return davis, results, tmp_path / "out"


def run_eval(capsys, davis: Path, results: Path, *extra: str) -> tuple[int, str, str]:
    code = main(
        ["eval", "--davis_root", str(davis), "--results", str(results), "--workers", "1", *extra]
    )
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def written_reports(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.exists() for p in folder.glob("*.csv")] + [
        p for folder in folders if folder.exists() for p in folder.glob("*.json")
    ]


def assert_one_error_line(err: str, *expected: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, f"expected exactly one stderr line, got {lines!r}"
    assert lines[0].startswith("error: "), lines[0]
    for text in expected:
        assert text in lines[0], f"{text!r} not named in {lines[0]!r}"


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


# --------------------------------------------------------------------------------- happy path


def test_semisupervised_perfect_results_files_and_formats(semi, capsys):
    davis, results, out = semi
    code, stdout, err = run_eval(capsys, davis, results, "--output", str(out))
    assert code == 0, err
    assert err == ""
    assert "Global results for val" in stdout and "Per sequence results for val" in stdout

    glob_csv = out / "global_results-val.csv"
    seq_csv = out / "per-sequence_results-val.csv"
    report_json = out / "results-val.json"
    assert glob_csv.is_file() and seq_csv.is_file() and report_json.is_file()
    assert not written_reports(results), "--output given: nothing may land in the results folder"

    rows = read_csv(glob_csv)
    assert ",".join(rows[0]) == GLOBAL_HEADER
    assert len(rows) == 2
    assert all(NUMBER.match(v) for v in rows[1]), rows[1]
    glob = dict(zip(rows[0], rows[1], strict=True))
    assert glob["J&F-Mean"] == glob["J-Mean"] == glob["F-Mean"] == "1.000"
    assert glob["J-Recall"] == glob["F-Recall"] == "1.000"
    assert glob["J-Decay"] == glob["F-Decay"] == "0.000"

    rows = read_csv(seq_csv)
    assert rows[0] == ["Sequence", "J-Mean", "F-Mean"]
    assert [r[0] for r in rows[1:]] == ["alpha_1", "alpha_2", "beta_1", "beta_2"]
    for row in rows[1:]:
        assert row[1:] == ["1.000", "1.000"]

    report = json.loads(report_json.read_text())
    assert report["task"] == "semi-supervised" and report["set"] == "val"
    assert report["metrics"] == ["J", "F"]
    assert report["global"]["J&F-Mean"] == pytest.approx(1.0)
    assert set(report["per_object"]) == {"alpha_1", "alpha_2", "beta_1", "beta_2"}
    for name, obj in report["per_object"].items():
        for key in STATS:
            assert key in obj, f"{name} lacks {key}"
        assert obj["JM"] == obj["FM"] == pytest.approx(1.0)
        # Semi-supervised: frames 1..T-2 are evaluated.
        assert obj["per_frame"]["J"] == [1.0] * (N_FRAMES - 2)
        assert obj["per_frame"]["F"] == [1.0] * (N_FRAMES - 2)


def test_semisupervised_imperfect_results_match_hand_computed_j(tmp_path, capsys):
    davis = make_davis(tmp_path / "davis")
    results = make_results(tmp_path / "results", imperfect)
    out = tmp_path / "out"
    code, _, err = run_eval(capsys, davis, results, "--output", str(out))
    assert code == 0, err

    report = json.loads((out / "results-val.json").read_text())
    j_means = []
    for s, seq in enumerate(SEQS):
        for k in (1, 2):
            expected = [
                iou(imperfect(gt_frame(s, t)) == k, gt_frame(s, t) == k)
                for t in range(1, N_FRAMES - 1)
            ]
            obj = report["per_object"][f"{seq}_{k}"]
            assert obj["per_frame"]["J"] == pytest.approx(expected)
            assert obj["JM"] == pytest.approx(np.mean(expected))
            assert 0.0 < obj["FM"] < 1.0  # object 1 shifted, object 2 halved: not perfect
            j_means.append(np.mean(expected))
    glob = dict(zip(*read_csv(out / "global_results-val.csv"), strict=True))
    assert glob["J-Mean"] == f"{np.mean(j_means):.3f}"
    assert float(glob["J&F-Mean"]) == pytest.approx(
        (report["global"]["J-Mean"] + report["global"]["F-Mean"]) / 2, abs=1e-3
    )


def test_metrics_with_temporal_stability_adds_t_mean(semi, capsys):
    davis, results, out = semi
    code, stdout, err = run_eval(capsys, davis, results, "--output", str(out), "--metrics", "J,F,T")
    assert code == 0, err
    rows = read_csv(out / "global_results-val.csv")
    assert ",".join(rows[0]) == GLOBAL_HEADER + ",T-Mean"
    assert all(NUMBER.match(v) for v in rows[1]), rows[1]
    rows = read_csv(out / "per-sequence_results-val.csv")
    assert rows[0] == ["Sequence", "J-Mean", "F-Mean", "T-Mean"]
    assert all(NUMBER.match(v) for row in rows[1:] for v in row[1:])
    report = json.loads((out / "results-val.json").read_text())
    assert report["metrics"] == ["J", "F", "T"]
    for obj in report["per_object"].values():
        assert obj["TM"] is not None and obj["TM"] >= 0.0
        assert "T" in obj["per_frame"]
    assert "T-Mean" in stdout


def test_unsupervised_permuted_perfect_proposals_score_one(tmp_path, capsys):
    davis = make_davis(tmp_path / "davis", task="unsupervised")
    # Proposal ids permuted: ground-truth object 1 is proposal 2 and object 2 is proposal 1.
    swap = np.array([0, 2, 1] + [0] * 253, np.uint8)
    results = make_results(tmp_path / "results", lambda ids: swap[ids])
    out = tmp_path / "out"
    code, _, err = run_eval(capsys, davis, results, "--task", "unsupervised", "--output", str(out))
    assert code == 0, err

    glob = dict(zip(*read_csv(out / "global_results-val.csv"), strict=True))
    assert glob["J&F-Mean"] == glob["J-Mean"] == glob["F-Mean"] == "1.000"
    rows = read_csv(out / "per-sequence_results-val.csv")
    assert [r[0] for r in rows[1:]] == ["alpha_1", "alpha_2", "beta_1", "beta_2"]
    assert all(r[1:] == ["1.000", "1.000"] for r in rows[1:])
    report = json.loads((out / "results-val.json").read_text())
    assert report["task"] == "unsupervised"
    for obj in report["per_object"].values():
        # Unsupervised: every frame is evaluated.
        assert obj["per_frame"]["J"] == [1.0] * N_FRAMES
        assert obj["per_frame"]["F"] == [1.0] * N_FRAMES


# ------------------------------------------------------------------------------- bad inputs


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


def test_semisupervised_does_not_need_first_and_last_frame_results(semi, capsys):
    davis, results, out = semi
    for seq in SEQS:
        (results / seq / "00000.png").unlink()
        (results / seq / f"{N_FRAMES - 1:05d}.png").unlink()
    code, _, err = run_eval(capsys, davis, results, "--output", str(out))
    assert code == 0, err
    glob = dict(zip(*read_csv(out / "global_results-val.csv"), strict=True))
    assert glob["J-Mean"] == glob["F-Mean"] == "1.000"


def test_unsupervised_needs_first_frame_results(tmp_path, capsys):
    davis = make_davis(tmp_path / "davis", task="unsupervised")
    results = make_results(tmp_path / "results")
    (results / "alpha" / "00000.png").unlink()
    code, _, err = run_eval(capsys, davis, results, "--task", "unsupervised")
    assert code == 2
    assert_one_error_line(err, str(results / "alpha" / "00000.png"))


def test_davis2016_grayscale_ground_truth_is_one_object(tmp_path, capsys):
    gray = make_davis(tmp_path / "gray", objects=1, grayscale_2016=True)
    palette = make_davis(tmp_path / "palette", objects=1)
    probe = Image.open(gray / "Annotations" / "480p" / "alpha" / "00000.png")
    assert probe.mode == "L" and set(np.unique(np.array(probe))) == {0, 255}
    results = make_results(tmp_path / "results", imperfect, objects=1)

    outputs = {}
    for name, davis in (("gray", gray), ("palette", palette)):
        out = tmp_path / f"out_{name}"
        code, _, err = run_eval(capsys, davis, results, "--output", str(out))
        assert code == 0, err
        outputs[name] = out
    for csv_name in ("global_results-val.csv", "per-sequence_results-val.csv"):
        assert (outputs["gray"] / csv_name).read_bytes() == (
            outputs["palette"] / csv_name
        ).read_bytes()
    rows = read_csv(outputs["gray"] / "per-sequence_results-val.csv")
    assert [r[0] for r in rows[1:]] == ["alpha_1", "beta_1"]
    reports = [json.loads((outputs[n] / "results-val.json").read_text()) for n in outputs]
    for report in reports:
        del report["davis_root"]
    assert reports[0] == reports[1]
    assert 0.0 < reports[0]["global"]["J-Mean"] < 1.0


def test_perfect_grayscale_2016_results_score_one(tmp_path, capsys):
    davis = make_davis(tmp_path / "davis", objects=1, grayscale_2016=True)
    results = make_results(tmp_path / "results", objects=1)  # palette results, id 1
    code, _, err = run_eval(capsys, davis, results, "--output", str(tmp_path / "out"))
    assert code == 0, err
    glob = dict(zip(*read_csv(tmp_path / "out" / "global_results-val.csv"), strict=True))
    assert glob["J-Mean"] == glob["F-Mean"] == "1.000"


def test_semisupervised_two_frame_sequence_is_handled(tmp_path, capsys):
    davis = make_davis(tmp_path / "davis", frames=2)
    results = make_results(tmp_path / "results", frames=2)
    code, _, err = run_eval(capsys, davis, results, "--output", str(tmp_path / "out"))
    assert code == 0, err
    assert (tmp_path / "out" / "results-val.json").is_file()


# ------------------------------------------------------------------------------ determinism


def test_parallel_workers_give_byte_identical_outputs(tmp_path, capsys):
    davis = make_davis(tmp_path / "davis")
    results = make_results(tmp_path / "results", imperfect)
    outputs = []
    for workers in ("1", "2"):
        out = tmp_path / f"out_w{workers}"
        code = main(
            [
                "eval",
                "--davis_root",
                str(davis),
                "--results",
                str(results),
                "--output",
                str(out),
                "--metrics",
                "J,F,T",
                "--workers",
                workers,
            ]
        )
        assert code == 0, capsys.readouterr().err
        outputs.append(out)
    names = ("global_results-val.csv", "per-sequence_results-val.csv", "results-val.json")
    for name in names:
        assert (outputs[0] / name).read_bytes() == (outputs[1] / name).read_bytes(), name
