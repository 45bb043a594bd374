"""benchmarks/ scripts print one JSON line (tiny models, small frames) and vos_jax.bench."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.conftest import FAST_COMPILE
from vos_jax.bench import stripes

REPO = Path(__file__).resolve().parent.parent


def test_stripes_give_every_slot():
    masks = stripes(4, 10, 3)
    assert masks.shape == (1, 4, 10) and set(np.unique(masks)) == {1, 2, 3}


def test_rvos_benchmark_prints_one_json_line():
    """(feelvos_inference.py shares vos_jax.bench; one subprocess run keeps the suite short.)"""
    argv = [sys.executable, "benchmarks/rvos.py", "--variant", "tiny", "--size", "32x48"]
    argv += ["--objects", "2", "--frames", "2"]
    env = {"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin", "XLA_FLAGS": FAST_COMPILE}
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
