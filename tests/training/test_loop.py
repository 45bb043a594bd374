"""train.py end to end, in subprocesses as a user runs it: exact resume after SIGKILL, SIGTERM, a
non-finite loss, a corrupt checkpoint, bad configs (1 vs 8 devices vs FSDP:
test_loop_equivalence).

Runs use vos_jax/configs/feelvos_synthetic.py:runlocal (tiny model, 48x64 videos, 33x33 crops)
and share a persistent compilation cache, so only the first run of each shape pays the compilation.
"""

import json
import shutil
import signal
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.trainer_runs import BASE, STEPS, losses, make_env, start, train
from vos_jax.training.writers import read_metrics


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_env(tmp_path_factory)


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


def test_exact_resume_after_sigkill(env, reference, tmp_path):
    workdir = tmp_path / "killed"
    proc = start(env, workdir, *BASE)
    wait_for(lambda: 4 in committed_steps(workdir), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = max(r["step"] for r in read_metrics(workdir))
    assert done < STEPS, "the run finished before it was killed"
    resumed = train(env, workdir, *BASE)
    assert "resuming from step" in resumed.stderr
    np.testing.assert_array_equal(losses(workdir), losses(reference))  # bitwise
    assert (workdir / "metrics.jsonl.replaced").exists() or done <= committed_steps(workdir)[0]


def test_sigterm_saves_a_checkpoint_and_exits_zero(env, tmp_path):
    workdir = tmp_path / "preempted"
    proc = start(env, workdir, *BASE)
    wait_for(lambda: (workdir / "metrics.jsonl").exists() and read_metrics(workdir), proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert "SIGTERM" in stderr
    last = max(r["step"] for r in read_metrics(workdir))
    assert 1 <= last < STEPS
    assert committed_steps(workdir)[-1] == last


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


def test_corrupt_latest_checkpoint_falls_back_with_a_warning(env, reference, tmp_path):
    workdir = tmp_path / "corrupt"
    shutil.copytree(reference, workdir)
    shutil.rmtree(workdir / "models")
    latest = committed_steps(workdir)[-1]
    # Truncate every data file of the latest state: its restore fails.
    for path in (workdir / "checkpoints" / str(latest) / "state").rglob("*"):
        if path.is_file() and path.stat().st_size > 0 and "metadata" not in path.name:
            path.write_bytes(b"")
    # A partial save of a killed run (never committed) is ignored.
    (workdir / "checkpoints" / f"{latest + 4}.orbax-checkpoint-tmp-0").mkdir()
    proc = train(env, workdir, *BASE)
    assert f"checkpoint {latest} cannot be restored" in proc.stderr
    assert f"resuming from step {latest - 4}" in proc.stderr
    assert list((workdir / "corrupt_checkpoints").glob(f"{latest}-*"))  # moved, not deleted
    np.testing.assert_array_equal(losses(workdir), losses(reference))


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


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config.totl_steps=3"], "totl_steps"),
        (["--config.model.variant=huge"], "config.model.variant: expected one of"),
        (["--config.total_steps=-1"], "config.total_steps: expected an integer >= 0"),
        (["--config.data.crop_size=(4, 4)"], "config.data.crop_size"),
        (["--config.optimizer.name=sgdx"], "config.optimizer.name"),
    ],
)
def test_bad_config_fails_before_compiling(env, tmp_path, args, message):
    started = time.monotonic()
    proc = train(env, tmp_path / "w", *args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-2000:]
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
    assert proc.returncode == 1
    assert "error: config.data.cropsize: unknown key (known: data.affine, data.batch" in proc.stderr
    assert not (tmp_path / "w").exists()
