"""benchmarks/ scripts print one JSON line (tiny models, small frames) and vos_jax.bench."""

import json
import runpy
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from tests.conftest import TEST_XLA_FLAGS
from vos_jax.bench import stripes

REPO = Path(__file__).resolve().parent.parent


def test_stripes_give_every_slot():
    masks = stripes(4, 10, 3)
    assert masks.shape == (1, 4, 10) and set(np.unique(masks)) == {1, 2, 3}


def test_rvos_benchmark_prints_one_json_line():
    """(feelvos_inference.py shares vos_jax.bench; one subprocess run keeps the suite short.)"""
    argv = [sys.executable, "benchmarks/rvos.py", "--variant", "tiny", "--size", "32x48"]
    argv += ["--objects", "2", "--frames", "2"]
    env = {"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin", "XLA_FLAGS": TEST_XLA_FLAGS}
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["size"] == [32, 48] and line["object_slots"] == 2
    assert line["ms_per_frame_median"] > 0 and line["compile_s"] > 0
    assert line["encoder_ms_median"] > 0 and line["mode"] == "one-shot"


def test_portrait_benchmark_times_ours_and_the_reference():
    """benchmarks/portrait.py's two timers, in-process (the selfie model, one call)."""
    import importlib.util

    from tests.shared_data import shared_path

    spec = importlib.util.spec_from_file_location("portrait_bench", REPO / "benchmarks/portrait.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path = shared_path("fixtures/mediapipe/selfie_segmentation.tflite")
    line = bench.ours(path, 2, 1, "float32")
    assert line["batch"] == 2 and line["size"] == [256, 256] and line["frames_per_s"] > 0
    reference = bench.reference(path, 1, 1)
    assert reference["batch"] == 1 and reference["frames_per_s"] > 0
    json.dumps(reference)  # one JSON line: plain types only


def _bench(capsys, *argv) -> dict:
    from vos_jax.cli import main

    capsys.readouterr()
    assert main(["bench", *argv]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    return json.loads(line)


@pytest.mark.parametrize("family", ["feelvos", "rvos", "siammask", "portrait"])
def test_bench_infer_measures_every_family_without_recompiling(family, capsys, tmp_path):
    """`vos-jax bench`: one JSON line, zero recompiles over the timed frames of 2 videos; the
    rates agree with the times and the MFU with the given peak."""
    out = tmp_path / "bench.jsonl"
    line = _bench(capsys, "--family", family, "--size", "64x96", "--objects", "2", "--frames",
                  "2", "--batch", "2", "--peak_tflops", "0.5", "--json", str(out))  # fmt: skip
    assert json.loads(out.read_text()) == line
    assert line["recompiles"] == 0 and line["batch"] == 2 and line["size"] == [64, 96]
    assert line["frames_per_s"] == pytest.approx(2e3 / line["ms_per_step"], rel=1e-2)
    expected = line["gflops_per_frame"] * 2e9 / (line["ms_per_step"] / 1e3) / 1e12
    assert line["tflops_per_s"] == pytest.approx(expected, rel=2e-2, abs=2e-4)
    assert line["mfu"] == pytest.approx(line["tflops_per_s"] / 0.5, abs=2e-4)
    assert line["compiled_mb"] > 0 and line["peak_tflops_per_device"] == 0.5


def test_bench_flops_are_per_frame_and_json_lines_append(capsys, tmp_path):
    out = tmp_path / "bench.jsonl"
    argv = ["--family", "rvos", "--size", "64x96", "--objects", "2", "--frames", "2"]
    one = _bench(capsys, *argv, "--batch", "1", "--json", str(out))
    two = _bench(capsys, *argv, "--batch", "2", "--json", str(out))
    assert [json.loads(line) for line in out.read_text().splitlines()] == [one, two]
    assert one["mfu"] is None  # the CPU has no known peak
    # Two videos cost more than one and at most twice as much (XLA fuses some work per call).
    per_frame = one["gflops_per_frame"], two["gflops_per_frame"]
    assert per_frame[0] < 2 * per_frame[1] <= 2.02 * per_frame[0]


def test_bench_train_step_on_eight_devices(capsys):
    # A DAVIS config: its model, loss and optimizer on the built-in synthetic videos.
    line = _bench(capsys, "--family", "portrait", "--mode", "train", "--steps", "2",
                  "--config", "vos_jax/configs/portrait_davis.py",
                  "--size", "64x96", "--batch", "8", "--threads", "1")  # fmt: skip
    assert line["devices"] == len(jax.devices()) == 8 and line["recompiles"] == 0
    # Also fed by the input pipeline, a new batch each step: at least as slow (give or take
    # the timers' noise), the stall its excess.
    assert line["threads"] == 1 and line["input_ms_per_step"] > 0.5 * line["ms_per_step"]
    assert line["input_stall"] == pytest.approx(
        max(line["input_ms_per_step"] / line["ms_per_step"] - 1, 0), abs=2e-3
    )
    assert line["size"] == [64, 96] and line["batch"] == 8 and line["frames"] == 1
    assert line["gflops_per_step"] > 0 and np.isfinite(line["loss"])
    assert line["clips_per_s"] == pytest.approx(8e3 / line["ms_per_step"], rel=1e-2)


def test_bench_sweeps_batches_and_objects_with_a_table_and_a_plot(capsys, tmp_path):
    from PIL import Image

    from vos_jax.cli import main

    plot = tmp_path / "sweep.png"
    argv = ["bench", "--family", "portrait", "--size", "64x96", "--frames", "2"]
    assert main([*argv, "--batch", "1,2", "--objects", "1,2", "--plot", str(plot)]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.strip().splitlines()]
    assert [(x["batch"], x["objects"]) for x in lines] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    table = err.strip().splitlines()[-6:-1]  # header + 4 runs, then "wrote ..."
    assert table[0].split()[:3] == ["batch", "objects", "ms_per_step"]
    for row, line in zip(table[1:], lines, strict=True):
        assert row.split()[:2] == [str(line["batch"]), str(line["objects"])]
    with Image.open(plot) as image:
        assert image.format == "PNG" and min(image.size) > 200
    assert main([*argv, "--plot", str(tmp_path / "sweep.jpg")]) == 2  # before any run
    assert "expected a .png" in capsys.readouterr().err


def test_bench_refuses_an_unknown_family(capsys):
    from vos_jax.cli import main

    assert main(["bench", "--family", "maskrcnn"]) == 2
    assert "--family: expected one of" in capsys.readouterr().err
    assert main(["bench", "--family", "rvos", "--batch", "0"]) == 2


def test_train_step_benchmark_is_a_wrapper_of_bench_train(capsys, monkeypatch):
    """benchmarks/train_step.py passes its flags and the config's model to vos_jax.bench.train
    (measured for real on a DAVIS config: test_bench_train_step_on_eight_devices) and prints its
    line as the benchmark's."""
    import vos_jax.bench.train

    calls = []

    def fake_train(*args, **kwargs):
        calls.append((args, kwargs))
        return {"recompiles": 0}

    monkeypatch.setattr(vos_jax.bench.train, "train", fake_train)
    argv = ["train_step.py", "--config", "vos_jax/configs/portrait_davis.py", "--variant", "tiny",
            "--crop", "64x96", "--batch", "8", "--steps", "1", "--threads", "2"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(REPO / "benchmarks" / "train_step.py"), run_name="__main__")
    ((args, kwargs),) = calls
    assert args == ("portrait", "tiny", (64, 96), None, 8)
    assert kwargs["config"] == "vos_jax/configs/portrait_davis.py" and kwargs["steps"] == 1
    assert kwargs["threads"] == 2 and kwargs["dtype"] == "float32"
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line == {"recompiles": 0, "benchmark": "train_step", "config": argv[2]}
