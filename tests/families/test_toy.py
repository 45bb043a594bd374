"""Adding a family touches no generic layer: the test-only `toy` family (tests/families/toy.py),
registered in `FAMILIES`, trains with `training.loop.train` (8 devices), checkpoints, resumes
bit-exactly, exports a published model, and segments and evaluates with `vos-jax segment` /
`eval.py --checkpoint`."""

import json
import shutil

import jax
import numpy as np
import pytest

from tests.families import toy
from vos_jax import families
from vos_jax.cli import main
from vos_jax.io.layouts import DavisLayout
from vos_jax.training.config import ConfigError, base_config, validate
from vos_jax.training.loop import train


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(families.FAMILIES, "toy", toy)


def _config(tmp_path):
    config = base_config("toy")
    config.update(total_steps=6, log_every_steps=1, checkpoint_every_steps=3, eval_every_steps=6)
    config.synthetic.update(num_videos=3, num_frames=5, height=32, width=48, num_objects=2)
    config.synthetic.cache_dir = str(tmp_path / "data")
    config.data.update(batch_size=8, crop_size=(24, 24), num_frames=3, max_objects=2, threads=1)
    config.optimizer.update(name="adamw", learning_rate=1e-2, weight_decay=0.0)
    config.loss.label_smoothing = 0.1
    config.inference.update(max_objects=2, temperature=0.5)
    return config


def test_a_new_family_trains_resumes_and_segments_through_the_generic_layers(
    registered, tmp_path, capsys
):
    config = _config(tmp_path)
    workdir = tmp_path / "run"
    summary = train(config, workdir)
    assert summary["step"] == 6 and 0.0 <= summary["val_J&F-Mean"] <= 1.0
    first = families.load_model(summary["model"])
    assert first[0] is toy and first[3]["family"] == "toy"
    losses = [r["loss"] for r in map(json.loads, (workdir / "metrics.jsonl").open()) if "loss" in r]
    assert losses[-1] < losses[0]

    # Resume: drop the last checkpoint and the export; the rerun restarts at step 3 and ends
    # with the same parameters, bit for bit.
    shutil.rmtree(workdir / "checkpoints" / "6")
    shutil.rmtree(workdir / "models")
    again = train(config, workdir)
    assert again["step"] == 6
    resumed = families.load_model(again["model"])
    for a, b in zip(jax.tree.leaves(first[2]), jax.tree.leaves(resumed[2]), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    root = tmp_path / "data" / next(p.name for p in (tmp_path / "data").iterdir())
    layout = DavisLayout(root)
    seq = layout.sequences("val")[0]
    argv = ["segment", "--checkpoint", again["model"], "--frames", str(layout.frames_dir(seq))]
    argv += ["--masks", str(layout.first_mask_path(seq)), "--out", str(tmp_path / "out")]
    assert main([*argv, "--temperature", "2.0", "--max_objects", "2"]) == 0, capsys.readouterr()
    assert len(list((tmp_path / "out" / seq).glob("*.png"))) == 5
    assert main([*argv, "--global_every", "2", "--overwrite"]) == 2  # another family's option
    assert "--global_every: not an option of toy models" in capsys.readouterr().err


def test_a_new_family_config_validates_its_own_options(registered):
    config = base_config("toy")
    assert config.loss.to_dict() == {"given_frames": 1, "label_smoothing": 0.0}
    config.loss.label_smoothing = 0.25  # a float option
    validate(config)
    config.loss.given_frames = 0
    with pytest.raises(ConfigError, match="config.loss.given_frames: expected an integer >= 1"):
        validate(config)
