"""colab/quickstart: the notebook and its jupytext .py hold the same cells, and the .py runs
(small sizes) from a fresh working directory."""

import os
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

from tests.conftest import TEST_XLA_FLAGS, subprocess_cache_env
from tests.shared_data import shared_path

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "colab" / "quickstart.ipynb"
SCRIPT = REPO / "colab" / "quickstart.py"


@pytest.mark.parametrize("name", ["quickstart", "segment_your_video", "benchmark"])
def test_notebook_and_script_are_paired(name):
    cells = lambda nb: [(c.cell_type, c.source.strip()) for c in nb.cells]
    script = REPO / "colab" / f"{name}.py"
    assert cells(jupytext.read(script.with_suffix(".ipynb"))) == cells(jupytext.read(script))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> dict:
    """The test run's compilation cache (conftest.py): the notebooks train and segment the same
    tiny FEELVOS, so the second loads the programs that the first compiled."""
    return subprocess_cache_env(tmp_path_factory)


def _run(script: Path, tmp_path: Path, **extra) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "QUICKSTART_SMALL": "1",
        "QUICKSTART_DIR": str(tmp_path / "out"),
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count=1 {TEST_XLA_FLAGS}",
        "MPLBACKEND": "Agg",
        **extra,
    }
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_quickstart_script_runs(tmp_path, cache):
    proc = _run(SCRIPT, tmp_path, **cache)
    assert "J&F-Mean" in proc.stdout
    assert list((tmp_path / "out" / "results").glob("*/00000.png"))


def test_segment_your_video_runs_both_ways(tmp_path, cache):
    """A checkpoint trained and published in the notebook, loaded with load_published; then
    MediaPipe's selfie model (from the shared fixtures) on the same frames."""
    fixtures = shared_path("fixtures/mediapipe")
    proc = _run(
        REPO / "colab/segment_your_video.py", tmp_path, VOS_JAX_MEDIAPIPE=str(fixtures), **cache
    )
    assert "feelvos tiny" in proc.stdout and "portrait: done" in proc.stdout
    assert (tmp_path / "out" / "keep_colour.mp4").stat().st_size > 0


def test_benchmark_notebook_runs(tmp_path, cache):
    proc = _run(REPO / "colab/benchmark.py", tmp_path, **cache)
    lines = (tmp_path / "out" / "bench.jsonl").read_text().splitlines()
    assert len(lines) == 4 and (tmp_path / "out" / "bench.png").stat().st_size > 0
    assert "frames/s" in proc.stdout
