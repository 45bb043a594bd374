"""Running train.py in subprocesses as a user does (shared by the trainer tests)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.conftest import TEST_XLA_FLAGS, subprocess_cache_env
from vos_jax.training.writers import read_metrics

REPO = Path(__file__).resolve().parent.parent
CONFIG = "vos_jax/configs/feelvos_synthetic.py:runlocal"
STEPS, EVERY = 16, 4
# The reference run: 16 steps, a checkpoint every 4, no validation (tested in the demo test).
BASE = [
    f"--config.total_steps={STEPS}",
    f"--config.checkpoint_every_steps={EVERY}",
    "--config.eval_every_steps=0",
]


def _flags(devices: int) -> str:
    return f"--xla_force_host_platform_device_count={devices} {TEST_XLA_FLAGS}"


def make_env(tmp_path_factory, devices: int = 8) -> dict:
    """Environment of the runs: CPU, `devices` simulated devices, a shared data cache, and the
    test run's compilation cache (conftest.py): a program another run compiled (the same config,
    device count and flags) loads from it."""
    cache = tmp_path_factory.mktemp("cache")
    return {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": _flags(devices),
        "VOS_JAX_CACHE": str(cache / "data"),
        **subprocess_cache_env(tmp_path_factory),
    }


def _command(workdir, *overrides, config=CONFIG):
    return [sys.executable, "train.py", f"--config={config}", f"--workdir={workdir}", *overrides]


def train(env, workdir, *overrides, devices=None, check=True, config=CONFIG):
    """A train.py run to its end, on `devices` simulated devices (default: the env's)."""
    run_env = env if devices is None else dict(env, XLA_FLAGS=_flags(devices))
    command = _command(workdir, *overrides, config=config)
    proc = subprocess.run(command, cwd=REPO, env=run_env, capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def start(env, workdir, *overrides):
    return subprocess.Popen(
        _command(workdir, *overrides),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def losses(workdir) -> np.ndarray:
    records = [r for r in read_metrics(workdir) if "loss" in r]
    assert [r["step"] for r in records] == list(range(1, len(records) + 1))
    return np.array([r["loss"] for r in records], np.float64)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_processes(env, workdir, *overrides, processes=2, devices=4, config=CONFIG):
    """train.py as a multi-host job on this machine: `processes` processes of `devices` CPU
    devices each, joined through a coordinator on 127.0.0.1 (the README's launch by hand)."""
    address = f"127.0.0.1:{free_port()}"
    flags = _flags(devices)
    procs = []
    for index in range(processes):
        host = dict(env, XLA_FLAGS=flags, JAX_COORDINATOR_ADDRESS=address)
        host.update(JAX_NUM_PROCESSES=str(processes), JAX_PROCESS_ID=str(index))
        command = _command(workdir, *overrides, config=config)
        procs.append(subprocess.Popen(command, cwd=REPO, env=host, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))  # fmt: skip
    outputs = [proc.communicate(timeout=600) for proc in procs]
    for index, (proc, (_, stderr)) in enumerate(zip(procs, outputs, strict=True)):
        assert proc.returncode == 0, f"process {index}: {stderr[-3000:]}"
    return [stderr for _, stderr in outputs]
