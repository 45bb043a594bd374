"""Checkpoint retention (last N + best by J&F) and restore with the data iterator's position."""

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
