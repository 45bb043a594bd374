"""The official RVOS recipes as configs (vos_jax/configs/rvos_davis.py, rvos_ytvos_stage1.py,
rvos_ytvos_stage2.py; imatge-upc/rvos scripts/train_one_shot_*.sh), and the DAVIS one
(`given_frames=0`: the model's own outputs fed back) through `training.loop.train`: it trains and
resumes exactly from its checkpoint."""

import logging

import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from vos_jax.config_files import load_config
from vos_jax.data import synthetic
from vos_jax.families import load_model
from vos_jax.training import init_checkpoint
from vos_jax.training.config import validate
from vos_jax.training.loop import train
from vos_jax.training.writers import read_metrics

STAGE1 = "vos_jax/configs/rvos_ytvos_stage1.py"
STAGE2 = "vos_jax/configs/rvos_ytvos_stage2.py"


def _official(config) -> dict:
    """The recipe's values that the official scripts fix."""
    o, d = config.optimizer, config.data
    return dict(
        variant=config.model.variant,
        optimizer=(o.name, o.learning_rate, o.weight_decay, o.backbone_lr_multiplier, o.clip_norm),
        warmup=o.warmup_steps,
        clips=(d.sampling, d.num_frames, d.batch_size, tuple(d.crop_size), d.max_objects),
        augment=(d.affine, d.flip, d.photometric),
        redraw_small=d.min_stride4_pixels,
        frame_reduction=config.loss.frame_reduction,
    )


ADAM = ("adam", 1e-3, 1e-6, 1e-3, 0.0)  # decoder lr 1e-3, encoder 1e-6, torch L2 1e-6


def test_davis_config_is_the_official_one_shot_recipe():
    """train_one_shot_davis.sh: train_previous_inference_mask.py, batch 4, clips of 5 at 240x427,
    20 epochs of 207 steps, own outputs from frame 1 on; zero-shot: 10 epochs."""
    config = load_config("vos_jax/configs/rvos_davis.py")
    assert _official(config) == dict(
        variant="paper",
        optimizer=ADAM,
        warmup=0,
        clips=("clip", 5, 4, (240, 427), 10),
        augment=(True, True, False),
        redraw_small=0,
        frame_reduction="sum",
    )
    assert config.loss.given_frames == 0 and config.model.one_shot
    assert config.total_steps == 20 * 207
    assert config.model.init_prefixes == "encoder/base"  # the ImageNet ResNet-101's place
    assert (config.inference.input_height, config.inference.input_width) == (240, 427)
    zero_shot = load_config("vos_jax/configs/rvos_davis.py:zeroshot")
    assert not zero_shot.model.one_shot and zero_shot.total_steps == 10 * 207
    local = load_config("vos_jax/configs/rvos_davis.py:runlocal")
    assert local.model.variant == "tiny" and local.loss.given_frames == 0
    assert local.optimizer.name == "adam" and local.data.affine


def test_ytvos_stages_are_teacher_forcing_then_own_outputs_from_stage_1():
    """train_one_shot_youtube.sh: stage 1 train_previous_mask.py (every frame t >= 1 takes the
    ground truth of t - 1: given_frames = T - 1), stage 2 train_previous_inference_mask.py
    --transfer from stage 1 (given_frames 0, every parameter from stage 1's workdir)."""
    stage1 = load_config(STAGE1)
    official = dict(
        variant="paper",
        optimizer=ADAM,
        warmup=0,
        clips=("clip", 5, 4, (256, 448), 10),
        augment=(True, True, False),
        redraw_small=0,
        frame_reduction="sum",
    )
    assert _official(stage1) == official
    assert stage1.loss.given_frames == 4 and stage1.model.one_shot
    assert (stage1.model.init_checkpoint, stage1.model.init_prefixes) == ("", "encoder/base")
    stage2 = load_config(f"{STAGE2}:gs://bucket/runs/stage1")
    assert _official(stage2) == official
    assert stage2.loss.given_frames == 0 and stage2.model.one_shot
    assert stage2.model.init_checkpoint == "gs://bucket/runs/stage1"
    assert stage2.model.init_prefixes == ""  # encoder and decoder, as --transfer
    assert stage2.total_steps == stage1.total_steps == 20 * 4_300
    local1 = load_config(f"{STAGE1}:runlocal")
    local2 = load_config(f"{STAGE2}:/tmp/stage1,runlocal")
    assert (local1.data.num_frames, local1.loss.given_frames) == (3, 2)
    assert (local2.model.variant, local2.loss.given_frames) == ("tiny", 0)
    assert local2.model.init_checkpoint == "/tmp/stage1"
    zero_shot = load_config(f"{STAGE1}:zeroshot")
    assert not zero_shot.model.one_shot and zero_shot.total_steps == 50 * 4_300
    for config in (stage1, stage2, local1, local2, zero_shot):
        validate(config)
    with pytest.raises(ValueError, match="no stage 2"):
        load_config(f"{STAGE2}:/tmp/stage1,zeroshot")
    with pytest.raises(ValueError, match="expected stage 1's workdir"):
        load_config(f"{STAGE2}:runlocal")
    with pytest.raises(ValueError, match="expected stage 1's workdir"):
        load_config(STAGE2)


def test_davis_recipe_trains_on_its_own_outputs_and_resumes(tmp_path, caplog):
    """rvos_davis.py:runlocal (given_frames=0, Adam) through `train` on a synthetic DAVIS folder:
    2 steps, then a second call with total_steps=4 resumes from the step-2 checkpoint; its losses
    equal a 4-step run's, bit for bit (the constant-lr Adam does not depend on total_steps)."""
    root = synthetic.write_dataset(tmp_path / "davis", "davis", 4, 6, (48, 64), 2, 0)
    config = load_config("vos_jax/configs/rvos_davis.py:runlocal")
    assert config.loss.given_frames == 0
    config.data.update(root=str(root), crop_size=(32, 32), threads=1)
    config.update(total_steps=2, log_every_steps=1, checkpoint_every_steps=2, eval_every_steps=0)
    first = train(config, tmp_path / "run")
    assert first["step"] == 2 and np.isfinite(first["loss"])

    config.total_steps = 4
    with caplog.at_level(logging.WARNING):
        resumed = train(config, tmp_path / "run")
    assert "resuming from step 2" in caplog.text
    assert resumed["step"] == 4
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["2", "4"]
    fresh = train(config, tmp_path / "fresh")
    runs = [read_metrics(tmp_path / name) for name in ("run", "fresh")]
    losses = [[(r["step"], r["loss"]) for r in run if "loss" in r] for run in runs]
    assert [s for s, _ in losses[0]] == [1, 2, 3, 4]
    assert losses[0] == losses[1]  # exact
    assert fresh["loss"] == resumed["loss"]

    # This run as a stage 1: the stage-2 config's init_checkpoint (the workdir, all params) takes
    # its last export, step 4, whole.
    stage2 = load_config(f"{STAGE2}:{tmp_path / 'run'},runlocal")
    _, _, last, _ = load_model(resumed["model"])
    _, _, earlier, _ = load_model(tmp_path / "run" / "models" / "step_2")
    params, stats = init_checkpoint.load(
        stage2.model.init_checkpoint,
        last["params"],
        last["batch_stats"],
        stage2.model.init_prefixes,
    )
    want = flatten_dict(last["params"], sep="/")
    assert set(params) == set(want) and set(stats) == set(
        flatten_dict(last["batch_stats"], sep="/")
    )
    name = "decoder/conv_out/kernel"
    np.testing.assert_array_equal(params[name], want[name])
    assert not np.array_equal(params[name], flatten_dict(earlier["params"], sep="/")[name])
