"""train.py under faults, in subprocesses as a user runs it (issue 18): Ctrl-C, SIGTERM and
SIGKILL at random steps of one run (exact resume), a second trainer on the same workdir (refused:
the lock), a config change on restart (refused, or restored compatibly, or started fresh), a
non-finite loss, a corrupt checkpoint, a full disk, bad configs and workdirs (one `error:` line).
1 device vs FSDP across processes: tests/training/test_multiprocess.py.

Runs use vos_jax/configs/feelvos_synthetic.py:runlocal (tiny model, 48x64 videos, 33x33 crops)
and share a persistent compilation cache, so only the first run of each shape pays the compilation.
"""

import json
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.reliability.files import assert_unchanged, snapshot
from tests.trainer_runs import BASE, EVERY, STEPS, losses, make_env, start, train
from vos_jax.training.writers import read_metrics


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One device: the faults need no mesh (a sharded 2-process resume: test_multiprocess.py)."""
    return make_env(tmp_path_factory, devices=1)


def committed_steps(workdir) -> list[int]:
    folder = Path(workdir) / "checkpoints"
    return (
        sorted(int(p.name) for p in folder.glob("*") if p.name.isdigit()) if folder.exists() else []
    )


def wait_for(predicate, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"the run ended first: {proc.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def reference(env, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference")
    train(env, workdir, *BASE)
    return workdir


def _fail_line(stderr: str) -> str:
    """The run's one error line: no traceback, and `error:` last."""
    assert "Traceback" not in stderr, stderr[-3000:]
    return stderr.strip().splitlines()[-1]


def last_step(workdir) -> int:
    path = Path(workdir) / "metrics.jsonl"
    return max((r["step"] for r in read_metrics(workdir)), default=0) if path.exists() else 0


def _stop(proc, workdir, signum, code) -> tuple[int, str]:
    """Sends `signum`; -> (the last step done, stderr) once the run has exited with `code`."""
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == code, stderr[-3000:]
    done = last_step(workdir)
    assert done < STEPS, "the run finished before the signal"
    return done, stderr


# One run stopped three times at random steps (seeded), each stop resumed by the next run: Ctrl-C
# (while a second trainer on the same workdir is refused: the lock), then SIGTERM (preemption),
# each saving a checkpoint at the step it arrives; then SIGKILL after the next periodic checkpoint,
# which loses the steps after it, tears the log's last line and leaves the lock behind; here that
# checkpoint is corrupt as well (the one before resumes) with a partial save beside it. The loss
# trail of the last run equals the uninterrupted run's bitwise.
def test_ctrl_c_sigterm_and_kill_9_at_random_steps_then_resume_equals_the_uninterrupted_run(
    env, reference, tmp_path
):
    rng = random.Random(18)
    workdir = tmp_path / "stopped"
    proc = start(env, workdir, *BASE)
    wait_for(lambda: (workdir / ".lock").exists(), proc)  # it holds the workdir, still compiling
    other = train(env, workdir, *BASE, check=False)
    assert other.returncode == 2
    assert f"in use by another training run (PID {proc.pid})" in _fail_line(other.stderr)
    at = max(2, last_step(workdir) + 1) + rng.randint(0, 2)
    wait_for(lambda: last_step(workdir) >= at, proc)
    interrupted, stderr = _stop(proc, workdir, signal.SIGINT, 130)
    assert f"SIGINT: saved a checkpoint at step {interrupted}" in stderr
    assert committed_steps(workdir)[-1] == interrupted

    proc = start(env, workdir, *BASE)
    at = interrupted + rng.randint(2, 3)
    wait_for(lambda: last_step(workdir) >= at, proc)
    preempted, stderr = _stop(proc, workdir, signal.SIGTERM, 0)
    assert f"resuming from step {interrupted}" in stderr
    assert f"SIGTERM: saved a checkpoint at step {preempted}" in stderr
    assert committed_steps(workdir)[-1] == preempted

    assert preempted < STEPS - EVERY, "stopped too late: no periodic checkpoint before the end"
    proc = start(env, workdir, *BASE)
    wait_for(lambda: committed_steps(workdir)[-1] > preempted, proc)  # saves are async
    killed, _ = _stop(proc, workdir, signal.SIGKILL, -9)
    assert (workdir / ".lock").read_text().strip() == str(proc.pid)  # left behind: taken next
    with open(workdir / "metrics.jsonl", "a") as f:  # a torn last line
        f.write(f'{{"step": {killed + 1}, "loss": 0.12')
    saved = committed_steps(workdir)
    corrupt = saved.pop()
    _corrupt(workdir, corrupt)
    resumed = train(env, workdir, *BASE)
    assert f"resuming from step {saved[-1]}" in resumed.stderr
    assert "torn last line" in resumed.stderr
    assert f"checkpoint {corrupt} cannot be restored" in resumed.stderr
    assert list((workdir / "corrupt_checkpoints").glob(f"{corrupt}-*"))  # moved, not deleted
    np.testing.assert_array_equal(losses(workdir), losses(reference))  # bitwise


def _corrupt(workdir: Path, step: int) -> None:
    """Truncates every data file of checkpoint `step`'s state (its restore fails: the run falls
    back to the one before, and moves it aside), and leaves a killed run's partial save of the
    next (never committed: ignored)."""
    for path in (workdir / "checkpoints" / str(step) / "state").rglob("*"):
        if path.is_file() and path.stat().st_size > 0 and "metadata" not in path.name:
            path.write_bytes(b"")
    (workdir / "checkpoints" / f"{step + 4}.orbax-checkpoint-tmp-0").mkdir()


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(env, tmp_path):
    workdir = tmp_path / "diverged"
    proc = train(
        env,
        workdir,
        "--config.total_steps=50",
        "--config.checkpoint_every_steps=1",
        "--config.eval_every_steps=0",
        "--config.optimizer.learning_rate=1e12",
        "--config.optimizer.clip_norm=0",
        "--config.optimizer.warmup_steps=0",
        check=False,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith("error: step ") and ("nan" in message or "inf" in message), message
    bad_step = int(message.split()[2].rstrip(":"))
    steps = committed_steps(workdir)
    assert steps and steps[-1] == bad_step - 1  # every good step was saved, the bad one not
    restored = ocp.StandardCheckpointer().restore(
        workdir / "checkpoints" / str(steps[-1]) / "state"
    )
    params = [np.asarray(x) for x in jax.tree.leaves(restored["params"])]
    assert all(np.all(np.isfinite(p)) for p in params)


def test_metrics_log_and_outputs(reference):
    records = read_metrics(reference)
    for record in records:
        assert {"step", "loss", "lr", "grad_norm"} <= set(record)
        assert np.isfinite(record["loss"]) and record["lr"] >= 0
    assert "first_step_s" in records[0]
    assert all(r["step_time_s"] > 0 and r["examples_per_s"] > 0 for r in records[1:])
    assert list((reference / "tensorboard").glob("events.out.tfevents.*"))
    assert committed_steps(reference) == [8, 12, 16]  # keep the last 3
    meta = json.loads((reference / "models" / f"step_{STEPS}" / "model.json").read_text())
    assert meta["family"] == "feelvos" and meta["variant"] == "tiny"


# One case per path to an error (absl's flag parsing, ml_collections' override, the config's
# checks: each key's message is tests/training/test_config.py's).
@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--config.totl_steps=3"],
            "--config.totl_steps: not a key of the config or a bad "
            'value (totl_steps; Did you mean "total_steps"',
        ),
        (["--config.total_steps=many"], "--config.total_steps"),
        (["--restore=maybe"], "--restore"),
        (["--config.model.variant=huge"], "config.model.variant: expected one of"),
        (["--config.data.crop_size=(4, 4)"], "config.data.crop_size"),
    ],
)
def test_bad_config_fails_before_compiling(env, tmp_path, args, message):
    started = time.monotonic()
    proc = train(env, tmp_path / "w", *args, check=False)
    assert proc.returncode == 2
    line = _fail_line(proc.stderr)
    assert line.startswith("error: ") and message in line, proc.stderr[-2000:]
    assert not (tmp_path / "w").exists()  # nothing written, nothing compiled
    print(f"failed in {time.monotonic() - started:.1f} s")


def test_unknown_key_in_a_config_file(env, tmp_path):
    config = tmp_path / "typo.py"
    config.write_text(
        "from vos_jax.training.config import base_config\n\n\n"
        "def get_config():\n"
        '    config = base_config("feelvos")\n'
        "    config.data.cropsize = (33, 33)\n"
        "    return config\n"
    )
    proc = train(env, tmp_path / "w", config=str(config), check=False)
    assert proc.returncode == 2
    assert "error: config.data.cropsize: unknown key (known: data.affine, data.batch" in proc.stderr
    assert not (tmp_path / "w").exists()


def test_an_unusable_workdir_is_one_line(env, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    proc = train(env, a_file / "run", *BASE, check=False)
    assert proc.returncode == 2
    assert _fail_line(proc.stderr) == f"error: {a_file / 'run'}: Not a directory"
    assert a_file.read_text() == "not a folder"


def test_a_config_change_is_refused_then_restored_compatibly_or_started_fresh(
    env, reference, tmp_path
):
    workdir = tmp_path / "changed"
    shutil.copytree(reference, workdir)
    kept = snapshot(workdir / "checkpoints", workdir / "models", workdir / "metrics.jsonl")
    other = ["--config.optimizer.name=momentum", "--config.optimizer.learning_rate=1e-3"]
    proc = train(env, workdir, *BASE, *other, check=False)
    assert proc.returncode == 2
    line = _fail_line(proc.stderr)
    assert line.startswith(f"error: --workdir {workdir}: checkpoint {STEPS} does not fit"), line
    assert "opt_state." in line and "optimizer.name: 'adamw' -> 'momentum'" in line, line
    assert "--restore=fresh" in line and "--restore=compatible" in line
    assert_unchanged(kept, workdir / "checkpoints", workdir / "models", workdir / "metrics.jsonl")
    assert not (workdir / "corrupt_checkpoints").exists()

    # compatible: params, BatchNorm statistics and the step restored; momentum's slots fresh.
    proc = train(env, workdir, *BASE, *other, "--config.total_steps=18", "--restore=compatible")
    assert f"arrays that fit from checkpoint {STEPS}" in proc.stderr
    records = read_metrics(workdir)
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 19))
    np.testing.assert_array_equal(losses(workdir)[:STEPS], losses(reference))  # the old trail
    assert (workdir / "models" / "step_18").exists()
    assert json.loads((workdir / "config.json").read_text())["optimizer"]["name"] == "momentum"

    # fresh (here back to the first config, whose program is compiled): step 0, the same trail as
    # the first run; the earlier run (checkpoints, log, models) kept under previous_runs/.
    proc = train(env, workdir, *BASE, "--restore=fresh")
    assert "moved the earlier run to" in proc.stderr
    (previous,) = (workdir / "previous_runs").iterdir()
    assert committed_steps(previous)[-1] == 18
    assert (previous / "models" / "step_18").exists()
    np.testing.assert_array_equal(losses(workdir), losses(reference))


def _tmpfs(folder: Path, size: str) -> bool:
    """A small tmpfs at `folder` (root on Linux); False where the machine does not allow it."""
    folder.mkdir(parents=True)
    command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]
    return subprocess.run(command, capture_output=True).returncode == 0


def test_a_full_disk_stops_with_one_line_and_the_bytes_needed(env, tmp_path):
    disk = tmp_path / "disk"
    run_env = dict(env)
    mounted = _tmpfs(disk, "256k")
    if not mounted:  # a fake: the filesystem reports no free space (sitecustomize, below)
        fake = tmp_path / "fake_fs"
        fake.mkdir()
        (fake / "sitecustomize.py").write_text(
            "import shutil, collections\n"
            "usage = collections.namedtuple('usage', 'total used free')\n"
            "shutil.disk_usage = lambda path: usage(1 << 20, 1 << 20, 4096)\n"
        )
        run_env["PYTHONPATH"] = f"{fake}:{env.get('PYTHONPATH', '')}"
    try:
        every = "--config.checkpoint_every_steps=1"  # the first save cannot fit: refused up front
        proc = train(run_env, disk / "run", *BASE, every, check=False)
        assert proc.returncode == 1, proc.stderr[-3000:]
        line = _fail_line(proc.stderr)
        assert line.startswith(f"error: {disk / 'run' / 'checkpoints'}: no space left for "
                               "checkpoint 1: it needs about "), line  # fmt: skip
        assert committed_steps(disk / "run") == []  # nothing half written
        assert not (disk / "run" / "metrics.jsonl").exists()  # before compiling, no step taken
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=True)


def test_a_failing_background_write_names_the_full_disk(tmp_path, monkeypatch):
    """The space check passed, then the disk filled while orbax wrote in the background."""
    import errno

    import grain

    from vos_jax.training.checkpointing import Checkpoints, DiskFull

    checkpoints = Checkpoints(tmp_path / "w", keep=2)

    def full(*args, **kwargs):
        raise RuntimeError("write failed") from OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.manager, "save", full)
    iterator = iter(grain.MapDataset.range(4).to_iter_dataset())
    with pytest.raises(DiskFull, match="no space left on device writing a checkpoint"):
        checkpoints.save(1, {"w": jax.numpy.ones(1000)}, iterator)
