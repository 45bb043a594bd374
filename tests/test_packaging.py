"""A plain (non-editable) install works from any folder: the wheel ships the configs, and
`vos-jax demo --help` and a config load by its bare name run outside the source tree."""

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SKIP = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "runs", "demo_out", "tests")


def test_a_plain_install_runs_from_another_folder(tmp_path):
    source = tmp_path / "source"  # a copy: building in place would write build/ into the repo
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*SKIP))
    pip = [sys.executable, "-m", "pip"]
    wheel = [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", str(source)]
    subprocess.run([*wheel, "-w", str(tmp_path / "wheel")], check=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The dependencies come from the test environment (no download); vos_jax from the wheel.
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    built = next((tmp_path / "wheel").glob("vos_jax-*.whl"))
    install = [*pip, "--python", str(python), "install", "-q", "--no-deps", str(built)]
    subprocess.run(install, check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = dict(cwd=elsewhere, capture_output=True, text=True)
    proc = subprocess.run([venv / "bin" / "vos-jax", "demo", "--help"], **run)
    assert proc.returncode == 0 and "--config" in proc.stdout, proc.stderr
    check = (
        "import vos_jax; from vos_jax.config_files import load_config; "
        "c = load_config('feelvos_synthetic.py:runlocal'); "
        "print(vos_jax.__file__, c.model.family, c.total_steps)"
    )
    proc = subprocess.run([python, "-c", check], **run)
    assert proc.returncode == 0, proc.stderr
    where, family, steps = proc.stdout.split()
    assert where.startswith(site) and family == "feelvos" and int(steps) > 0
