"""The portrait family trains MaskTrack-style on the synthetic videos (single frames with
simulated previous masks; Lucid Data Dreaming as an option), checkpoints, resumes bit for bit,
validates with the MediaPipe recurrence, and fine-tunes from imported MediaPipe weights."""

import json
import shutil

import jax
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


def test_trains_from_simulated_priors_checkpoints_and_resumes(tmp_path):
    config = _config(tmp_path)
    workdir = tmp_path / "run"
    summary = train(config, workdir)
    assert summary["step"] == 6 and 0.0 <= summary["val_J&F-Mean"] <= 1.0
    first = families.load_model(summary["model"])
    assert first[3]["family"] == "portrait"
    assert len(_losses(workdir)) == 6 and all(np.isfinite(_losses(workdir)))
    shutil.rmtree(workdir / "checkpoints" / "6")
    shutil.rmtree(workdir / "models")
    again = train(config, workdir)
    resumed = families.load_model(again["model"])
    for a, b in zip(jax.tree.leaves(first[2]), jax.tree.leaves(resumed[2]), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_fine_tunes_from_the_imported_hair_weights(tmp_path):
    """init_checkpoint = a `vos-jax convert mediapipe` folder: training starts from MediaPipe's
    weights (the paper variant) with Lucid Data Dreaming samples."""
    from vos_jax.cli import main

    hair = tmp_path / "hair"
    tflite = shared_path("fixtures/mediapipe/hair_segmentation.tflite")
    assert main(["convert", "mediapipe", "--tflite", str(tflite), "--out", str(hair)]) == 0
    config = _config(tmp_path, "runlocal,lucid")
    config.model.variant = "paper"
    config.model.init_checkpoint = str(hair)
    config.update(total_steps=2, checkpoint_every_steps=2, eval_every_steps=0)
    config.synthetic.update(height=32, width=64)
    config.data.crop_size = (32, 64)
    summary = train(config, tmp_path / "tune")
    imported = families.load_model(hair)[2]["params"]
    tuned = families.load_model(summary["model"])[2]["params"]
    moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
                         imported, tuned)  # fmt: skip
    assert 0 < max(jax.tree.leaves(moved)) < 1.0  # started from the imported weights, and moved
