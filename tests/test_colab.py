"""colab/quickstart: the notebook and its jupytext .py hold the same cells, and the .py runs
(small sizes) from a fresh working directory."""

import os
import subprocess
import sys
from pathlib import Path

import jupytext

from tests.conftest import SUBPROCESS_FAST_COMPILE

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "colab" / "quickstart.ipynb"
SCRIPT = REPO / "colab" / "quickstart.py"


def test_notebook_and_script_are_paired():
    cells = lambda nb: [(c.cell_type, c.source.strip()) for c in nb.cells]
    assert cells(jupytext.read(NOTEBOOK)) == cells(jupytext.read(SCRIPT))


def test_quickstart_script_runs(tmp_path):
    env = {
        **os.environ,
        "QUICKSTART_SMALL": "1",
        "QUICKSTART_DIR": str(tmp_path / "out"),
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count=1 {SUBPROCESS_FAST_COMPILE}",
        "MPLBACKEND": "Agg",
    }
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "J&F-Mean" in proc.stdout
    assert list((tmp_path / "out" / "results").glob("*/00000.png"))
