"""The portrait family trains MaskTrack-style on the synthetic videos (single frames with
simulated previous masks, Lucid Data Dreaming), checkpoints, resumes bit for bit, validates with
the MediaPipe recurrence, and starts from imported MediaPipe weights."""

import argparse
import importlib.util
import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from tests.shared_data import REPO, shared_path
from vos_jax import families
from vos_jax.cli import engine_options
from vos_jax.configs import portrait_synthetic
from vos_jax.data.sources import decode_frame
from vos_jax.inference.portrait import find_model, segment
from vos_jax.io.layouts import DavisLayout
from vos_jax.io.masks import read_mask
from vos_jax.training.loop import train


def _config(tmp_path, arg="runlocal"):
    config = portrait_synthetic.get_config(arg)
    config.synthetic.cache_dir = str(tmp_path / "data")
    return config


def _losses(workdir):
    return [r["loss"] for r in map(json.loads, (workdir / "metrics.jsonl").open()) if "loss" in r]


def test_trains_from_simulated_priors_and_checkpoints(tmp_path, capsys):
    """With Lucid Data Dreaming samples too (`lucid`). Checkpoints at steps 3 and 6, and a restart
    restores the last (resuming mid-run is the generic trainer's, bit-exact for every family:
    tests/training, tests/families/test_toy.py)."""
    config = _config(tmp_path, "runlocal,lucid")
    workdir = tmp_path / "run"
    summary = train(config, workdir)
    assert summary["step"] == 6 and 0.0 <= summary["val_J&F-Mean"] <= 1.0
    first = families.load_model(summary["model"])
    assert first[3]["family"] == "portrait"
    card = (Path(summary["model"]) / "README.md").read_text()  # the model card
    for section in (
        "## Data\nvos-jax's built-in synthetic",
        "## Recipe\n6 steps of batch 8",
        "## Metrics (validation)\n- val_J&F-Mean: ",
        "## Licence",
        "## Cite\n",
    ):
        assert section in card, section
    assert families.portrait.CITATION in card
    # `vos-jax portrait --model` runs it at the size it was trained for, not HairNet's 512x512.
    assert find_model(summary["model"])[2] == (64, 96)
    # ... and so do eval.py and `vos-jax segment` (unless a flag or --config says otherwise).
    no_flags = argparse.Namespace(config=None)
    assert engine_options(no_flags, "portrait", first[3]["inference"])["input_width"] == 96
    assert engine_options(argparse.Namespace(config=None, input_width=128), "portrait", first[3][
        "inference"])["input_width"] == 128  # fmt: skip
    assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == [
        3, 6]  # fmt: skip
    assert len(_losses(workdir)) == 6 and all(np.isfinite(_losses(workdir)))
    _people_scores_are_the_apps_masks_iou(summary["model"], tmp_path / "data", capsys)
    # A restart restores the last checkpoint (nothing left to train) and exports it unchanged.
    shutil.rmtree(workdir / "models")
    again = train(config, workdir)
    assert again["step"] == 6
    restored = families.load_model(again["model"])[2]
    for a, b in zip(jax.tree.leaves(first[2]), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _people_scores_are_the_apps_masks_iou(checkpoint, data, capsys):
    """benchmarks/portrait_people.py on the run's val videos: one JSON line per video, J = the
    IoU of the app's masks with all objects as one, over every frame (brute force here)."""
    spec = importlib.util.spec_from_file_location("people", REPO / "benchmarks/portrait_people.py")
    people = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(people)
    (root,) = data.iterdir()
    capsys.readouterr()
    people.main(["--models", str(checkpoint), "--root", str(root)])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    layout = DavisLayout(root)
    assert [line["sequence"] for line in lines] == layout.sequences("val")
    model, variables, size = find_model(str(checkpoint))
    for line in lines:
        paths = layout.frame_paths(line["sequence"])
        frames = [decode_frame(p) for p in paths]
        found = np.stack([m > 0.5 for _, m in segment(frames, model, variables, size)])
        truth = np.stack([read_mask(layout.mask_path(line["sequence"], p.stem)) for p in paths])
        person, seen = (truth > 0) & (truth < 255), truth < 255  # void counts for neither
        inter = (found & person).sum((1, 2))
        union = ((found | person) & seen).sum((1, 2))
        iou = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
        assert line["size"] == [64, 96] and line["frames"] == len(paths)
        assert abs(line["J"] - iou.mean()) < 1e-4, (line, iou)


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
