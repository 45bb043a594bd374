"""train.py on 1 device and as a 2-process job (2 x 4 CPU devices, gloo collectives, the
coordinator on 127.0.0.1) on a 4 x 2 mesh (data parallel over 4, FSDP over 2, each parameter
split across devices of both processes), each process reading its own slice of every global
batch: the same float64 losses over 6 steps, and an exact resume of the 2-process run from its
step-3 checkpoint.

Equivalence through the whole trainer (sharded data loading, mesh, FSDP placement across hosts,
step, checkpoints), computed in float64: in float32 the trails drift apart after a few steps (the
per-device batch changes the last-bit rounding of convolutions and reductions; max-pool, matching
minima and top-k near-ties turn that into other gradients, which training amplifies). In float64
they agree to ~1e-16, so any sharding error would stand out far above 1e-9. Each float32 FEELVOS
step on the 4 x 2 mesh from the same state: tests/training/test_step.py (1e-5)."""

import shutil

import numpy as np
import pytest

from tests.trainer_runs import losses, make_env, train, train_processes

# The portrait family's synthetic config: the smallest of the trainers' programs (compiled once
# per process; two compile side by side on this machine's two cores).
CONFIG = "vos_jax/configs/portrait_synthetic.py:runlocal"
RUN = [
    "--config.total_steps=6",
    "--config.eval_every_steps=0",
    "--config.checkpoint_every_steps=3",
    "--config.optimizer.warmup_steps=2",
    "--config.model.dtype=float64",
]
FSDP = "--config.mesh.fsdp=2"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_env(tmp_path_factory)


def test_two_processes_with_fsdp_train_as_one_device_and_resume(env, tmp_path):
    train(env, tmp_path / "one", *RUN, devices=1, config=CONFIG)
    want = losses(tmp_path / "one")
    logs = train_processes(env, tmp_path / "two", *RUN, FSDP, config=CONFIG)
    for index, log in enumerate(logs):  # one job of 8 devices, not two of 4
        assert f"process {index} of 2: 4 of 8 devices" in log
        assert "mesh: data 4 x fsdp 2" in log
    got = losses(tmp_path / "two")
    print("max relative difference", np.max(np.abs(got - want) / want))
    assert len(want) == 6
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert want[-1] < 0.995 * want[0]  # real updates (measured: 1% down in 6 steps)
    # Only process 0 writes the published model; both hosts' checkpoints are one orbax save.
    assert (tmp_path / "two" / "models" / "step_6" / "SHA256SUMS").exists()

    # Resume: the run as if killed after its step-3 checkpoint.
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "two", resumed)
    shutil.rmtree(resumed / "checkpoints" / "6")
    shutil.rmtree(resumed / "models")
    logs = train_processes(env, resumed, *RUN, FSDP, config=CONFIG)
    assert all("resuming from step 3" in log for log in logs)
    np.testing.assert_array_equal(losses(resumed), got)  # bitwise
