"""The portrait family trains MaskTrack-style on the synthetic videos (single frames with
simulated previous masks, Lucid Data Dreaming), checkpoints, resumes bit for bit, validates with
the MediaPipe recurrence, and starts from imported MediaPipe weights."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np

from tests.shared_data import shared_path
from vos_jax import families
from vos_jax.configs import portrait_synthetic
from vos_jax.training.loop import train


def _config(tmp_path, arg="runlocal"):
    config = portrait_synthetic.get_config(arg)
    config.synthetic.cache_dir = str(tmp_path / "data")
    return config


def _losses(workdir):
    return [r["loss"] for r in map(json.loads, (workdir / "metrics.jsonl").open()) if "loss" in r]


def test_trains_from_simulated_priors_and_checkpoints(tmp_path):
    """With Lucid Data Dreaming samples too (`lucid`). Checkpoints at steps 3 and 6, and a restart
    restores the last (resuming mid-run is the generic trainer's, bit-exact for every family:
    tests/training, tests/families/test_toy.py)."""
    config = _config(tmp_path, "runlocal,lucid")
    workdir = tmp_path / "run"
    summary = train(config, workdir)
    assert summary["step"] == 6 and 0.0 <= summary["val_J&F-Mean"] <= 1.0
    first = families.load_model(summary["model"])
    assert first[3]["family"] == "portrait"
    assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == [
        3, 6]  # fmt: skip
    assert len(_losses(workdir)) == 6 and all(np.isfinite(_losses(workdir)))
    # A restart restores the last checkpoint (nothing left to train) and exports it unchanged.
    shutil.rmtree(workdir / "models")
    again = train(config, workdir)
    assert again["step"] == 6
    restored = families.load_model(again["model"])[2]
    for a, b in zip(jax.tree.leaves(first[2]), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_fine_tuning_starts_from_the_imported_hair_weights(tmp_path):
    """init_checkpoint = a `vos-jax convert mediapipe` folder: what train.py loads into a fresh
    paper model (training/init_checkpoint.py, tested end to end in tests/training) is MediaPipe's
    weights, every parameter."""
    from vos_jax.cli import main
    from vos_jax.training import init_checkpoint

    hair = tmp_path / "hair"
    tflite = shared_path("fixtures/mediapipe/hair_segmentation.tflite")
    assert main(["convert", "mediapipe", "--tflite", str(tflite), "--out", str(hair)]) == 0
    model, _ = families.build_model("portrait", "paper")
    fresh = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 64, 96, 4))))
    params, stats = init_checkpoint.load(hair, fresh["params"], {})
    imported = families.load_model(hair)[2]["params"]
    flat = dict(jax.tree_util.tree_leaves_with_path(imported))
    assert len(params) == len(flat) == 346 and not stats  # the graph: 346 constants
    for path, value in flat.items():
        name = "/".join(k.key for k in path)
        np.testing.assert_array_equal(params[name], np.asarray(value))
