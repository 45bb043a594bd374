"""Scores of `eval.py` / `vos-jax eval` (vos_jax.metrics.evaluation) against hand-computed ones on
tiny synthetic DAVIS folders (tests/metrics/eval_cases.py): perfect and imperfect results, T,
unsupervised matching, DAVIS 2016 grayscale, short sequences, parallel workers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.metrics.eval_cases import (
    GLOBAL_HEADER,
    N_FRAMES,
    NUMBER,
    SEQS,
    STATS,
    assert_one_error_line,
    gt_frame,
    imperfect,
    iou,
    make_davis,
    make_results,
    read_csv,
    run_eval,
    written_reports,
)
from vos_jax.cli import main
from vos_jax.io.masks import write_mask


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


# ------------------------------------------------------------------- grayscale id masks (mode L)


def _grayscale_davis(root, davis):
    """The ground truth of `davis` re-saved as 8-bit grayscale PNGs of the same ids."""
    for path in sorted((davis / "Annotations").rglob("*.png")):
        target = root / path.relative_to(davis)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.array(Image.open(path)), mode="L").save(target)
    (root / "ImageSets").mkdir(exist_ok=True)
    (root / "ImageSets" / "2017").mkdir(exist_ok=True)
    (root / "ImageSets/2017/val.txt").write_text((davis / "ImageSets/2017/val.txt").read_text())
    return root


@pytest.mark.parametrize("void", [False, True], ids=["ids", "ids-and-void"])
def test_grayscale_id_masks_score_as_the_toolkit_reads_them(tmp_path, capsys, void):
    """The official toolkit reads every mask as `np.array(Image.open(path))`: in an 'L' PNG, as in
    a palette one, the pixel value is the object id (255 void in the ground truth). Ground truth
    and results in mode 'L' give the palette files' scores."""

    def with_void(ids):
        ids = ids.copy()
        if void:
            ids[0:3, :] = 255  # a void band in the ground truth
        return ids

    palette = tmp_path / "palette"
    make_davis(palette)
    for path in sorted((palette / "Annotations").rglob("*.png")):
        write_mask(path, with_void(np.array(Image.open(path))))
    gray = _grayscale_davis(tmp_path / "gray", palette)
    assert Image.open(next(gray.rglob("00003.png"))).mode == "L"
    outputs = {}
    for name, davis, mode in (("palette", palette, "P"), ("gray", gray, "L")):
        results = make_results(tmp_path / f"results_{name}", imperfect, mode=mode)
        out = tmp_path / f"out_{name}"
        code, _, err = run_eval(capsys, davis, results, "--output", str(out), "--metrics", "J,F,T")
        assert code == 0, err
        outputs[name] = out
    for csv_name in ("global_results-val.csv", "per-sequence_results-val.csv"):
        assert (outputs["gray"] / csv_name).read_bytes() == (
            outputs["palette"] / csv_name
        ).read_bytes()
    rows = read_csv(outputs["gray"] / "per-sequence_results-val.csv")
    assert [r[0] for r in rows[1:]] == ["alpha_1", "alpha_2", "beta_1", "beta_2"]
    # Object 1 is shifted by 2 px: its J is the hand-computed IoU, so ids were read as ids.
    j = np.mean([iou(imperfect(gt_frame(0, t)) == 1, gt_frame(0, t) == 1) for t in range(1, 5)])
    if not void:
        assert float(rows[1][1]) == pytest.approx(j, abs=5e-4)
