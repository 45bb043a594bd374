"""Checkpoint retention (last N + best by J&F) and restore with the data iterator's position."""

import subprocess
import sys

import jax.numpy as jnp
import numpy as np

from vos_jax.data import pipeline
from vos_jax.training.checkpointing import Checkpoints


def _iterator():
    dataset = pipeline.grain.MapDataset.range(100).batch(2)
    return pipeline.make_iterator(dataset, threads=1)


def test_keeps_the_last_n_and_the_best_by_jf(tmp_path):
    checkpoints = Checkpoints(tmp_path, keep=2)
    iterator = _iterator()
    scores = {1: 0.1, 2: 0.9, 3: 0.2, 4: None, 5: 0.4}
    for step, jf in scores.items():
        next(iterator)
        state = {"w": jnp.full((3,), float(step))}
        checkpoints.save(step, state, iterator, None if jf is None else {"J&F": jf})
    checkpoints.wait()
    assert checkpoints.steps() == [2, 4, 5]  # the best (2) and the last two

    fresh = _iterator()
    step, state = Checkpoints(tmp_path, keep=2).restore_latest({"w": jnp.zeros(3)}, fresh)
    assert step == 5
    np.testing.assert_array_equal(state["w"], [5.0, 5.0, 5.0])
    np.testing.assert_array_equal(next(fresh), [10, 11])  # the iterator continues after 5 batches


def test_no_checkpoint_restores_nothing(tmp_path):
    assert Checkpoints(tmp_path, keep=1).restore_latest({"w": jnp.zeros(3)}, _iterator()) == (
        0,
        None,
    )


def test_a_killed_runs_partial_save_is_removed_before_anything_else_happens(tmp_path):
    """orbax removes partial saves in a thread; `Checkpoints` waits for it, so a restore never
    races it and a run that exits before its first save leaves no thread to fail at shutdown
    (CI saw `cannot schedule new futures after shutdown` from a run refused for a full disk)."""
    partial = tmp_path / "checkpoints" / "8.orbax-checkpoint-tmp-0"
    (partial / "state").mkdir(parents=True)
    checkpoints = Checkpoints(tmp_path, keep=1)
    assert not partial.exists()
    assert checkpoints.steps() == []
    exits = "import sys\nfrom vos_jax.training.checkpointing import Checkpoints\n"
    exits += f"Checkpoints({str(tmp_path / 'other')!r}, keep=1)\nsys.exit(3)\n"
    proc = subprocess.run([sys.executable, "-c", exits], capture_output=True, text=True)
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
