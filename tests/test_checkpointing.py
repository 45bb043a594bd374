"""Checkpoint retention (last N + best by J&F), config validation, the metrics log on resume,
the synthetic-data cache (vos_jax/training, in-process and fast)."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from vos_jax.data import pipeline
from vos_jax.training import data
from vos_jax.training.checkpointing import Checkpoints
from vos_jax.training.config import ConfigError, base_config, validate
from vos_jax.training.writers import MetricWriter, read_metrics


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


def test_validate_accepts_the_configs_and_names_bad_keys():
    from vos_jax.config_files import load_config

    rvos_args = ("", ":runlocal", ":zeroshot", ":zeroshot,runlocal")
    for name, args in (
        ("feelvos_synthetic", ("", ":runlocal")),
        ("feelvos_davis17", ("", ":runlocal")),
        ("feelvos_ytvos", ("", ":runlocal")),
        ("rvos_synthetic", rvos_args),
        ("rvos_davis", rvos_args),
        ("rvos_ytvos", rvos_args),
    ):
        for arg in args:
            config = load_config(f"configs/{name}.py{arg}")
            if config.data.source == "davis":
                config.data.root = "/data/DAVIS"
            validate(config)
            if name.startswith("rvos"):
                assert config.model.one_shot == ("zeroshot" not in arg)
    with pytest.raises(ValueError, match="unknown arguments"):
        load_config("configs/rvos_davis.py:zero")
    config = base_config()
    config.optimizer.learning_rate = 0
    with pytest.raises(ConfigError, match=r"config.optimizer.learning_rate: expected a number > 0"):
        validate(config)
    config = base_config()
    config.data.batch_size = 0
    with pytest.raises(ConfigError, match=r"config.data.batch_size: expected an integer >= 1"):
        validate(config)
    config = base_config()
    config.data.source = "davis"
    with pytest.raises(ConfigError, match=r"config.data.root: expected a DAVIS folder"):
        validate(config)
    config = base_config("rvos")
    config.loss.anneal_steps = 5  # a FEELVOS option
    with pytest.raises(ConfigError, match=r"config.loss.anneal_steps: unknown key"):
        validate(config)
    config = base_config()
    config.model.dtyp = "bfloat16"
    with pytest.raises(ConfigError, match=r"config.model.dtyp: unknown key"):
        validate(config)


def test_metric_log_drops_redone_steps_on_resume(tmp_path):
    writer = MetricWriter(tmp_path, start_step=0)
    for step in range(1, 6):
        writer.write(step, {"loss": 1.0 / step, "lr": 0.1})
    writer.write(6, {"loss": float("nan"), "lr": 0.1})
    writer.close()
    assert read_metrics(tmp_path)[-1]["loss"] == "nan"  # JSON has no NaN: written as a string
    MetricWriter(tmp_path, start_step=3).close()  # resumed from the checkpoint of step 3
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    replaced = (tmp_path / "metrics.jsonl.replaced").read_text().splitlines()
    assert [json.loads(line)["step"] for line in replaced] == [4, 5, 6]


def test_synthetic_videos_are_generated_once_and_reused(tmp_path):
    config = base_config()
    config.synthetic.update(num_videos=3, num_frames=4, height=32, width=48, num_objects=1)
    config.synthetic.cache_dir = str(tmp_path)
    root = data.synthetic_root(config.synthetic)
    assert (root / "ImageSets" / "2017" / "val.txt").read_text().split()
    stamp = {p: p.stat().st_mtime_ns for p in root.rglob("*.jpg")}
    assert data.synthetic_root(config.synthetic) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.jpg")} == stamp  # not rewritten
    config.synthetic.seed = 1
    assert data.synthetic_root(config.synthetic) != root
    assert not list(tmp_path.glob(".*"))  # no temporary folders left
