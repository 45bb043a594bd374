"""The RVOS family's training (vos_jax/families/rvos.py): soft IoU, the Hungarian assignment of
zero-shot slots, the one-shot feedback schedule, and short runs of both modes that lower the
loss on synthetic clips (sharded over the 8 simulated devices)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vos_jax import sharding
from vos_jax.data import pipeline, synthetic
from vos_jax.data.sources import DavisFolderSource
from vos_jax.families import build_model, rvos
from vos_jax.families.rvos import decode_clip, encode, hungarian_assignment
from vos_jax.families.rvos import loss as rvos_loss
from vos_jax.losses import soft_iou_loss
from vos_jax.models.rvos import Rvos, initial_state
from vos_jax.training import create_state, make_optimizer, make_train_step, shard_state

SLOTS = 3
STEPS, LR = 30, 1e-2  # overfitting one batch: a high learning rate shows within 30 steps


def test_soft_iou_loss_matches_numpy():
    rng = np.random.default_rng(0)
    p, y = rng.random((4, 50)), (rng.random((4, 50)) > 0.5).astype(float)
    want = 1 - (p * y).sum(-1) / ((p + y - p * y).sum(-1) + 1e-6)
    np.testing.assert_allclose(np.asarray(soft_iou_loss(jnp.asarray(p), jnp.asarray(y))), want)


def test_hungarian_assignment_is_the_cheapest_permutation():
    rng = np.random.default_rng(1)
    probs = rng.random((5, 40, 4))
    targets = (rng.random((5, 40, 4)) > 0.6).astype(np.float32)
    valid = np.ones((5, 4), bool)
    valid[3, 2:] = False  # an example with only 2 objects
    got = np.asarray(jax.jit(hungarian_assignment)(probs, targets, valid))
    cost = np.asarray(
        soft_iou_loss(probs.transpose(0, 2, 1)[:, :, None], targets.transpose(0, 2, 1)[:, None])
    )
    for b in range(5):
        assert sorted(got[b]) == [0, 1, 2, 3]  # a permutation of the target slots

        def scored(perm, b=b):
            return sum(cost[b, i, perm[i]] for i in range(4) if valid[b, perm[i]])

        best = min(scored(perm) for perm in itertools.permutations(range(4)))
        np.testing.assert_allclose(scored(got[b]), best, rtol=1e-6)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A fixed batch of 8 synthetic 3-frame clips (32x32 crops, 3 objects) through the pipeline."""
    root = synthetic.write_dataset(tmp_path_factory.mktemp("synth"), "davis", 6, 8, (48, 64), 3, 0)
    config = pipeline.SampleConfig(
        sampling="clip", num_frames=3, crop_size=(32, 32), max_objects=SLOTS, scale_range=(1, 1)
    )
    dataset = pipeline.make_dataset(DavisFolderSource(root, "train"), config, 8, seed=0)
    return dataset[0]


def test_one_shot_feedback_schedule(clips):
    """decode_clip with given_frames=1: frames 0 and 1 take frame 0's masks, frame 2 the
    model's own output of frame 1 (as a loop over frames computes it)."""
    model, _ = build_model("rvos", "tiny")
    variables = jax.jit(model.init, static_argnames="num_objects")(
        jax.random.key(0), clips["frames"][:2, 0], num_objects=SLOTS
    )
    frames = jnp.asarray(clips["frames"][:2])
    batch, steps = frames.shape[:2]
    skips = encode(model, variables, frames.reshape(batch * steps, *frames.shape[2:]))
    skips = tuple(s.reshape(batch, steps, *s.shape[1:]) for s in skips)
    ids = jnp.arange(1, SLOTS + 1)
    teacher = (jnp.asarray(clips["masks"][:2])[..., None] == ids).astype(jnp.float32)
    clip = jax.jit(
        lambda g: decode_clip(model, variables, skips, teacher, SLOTS, (32, 32), given_frames=g),
        static_argnums=0,
    )
    decode = jax.jit(
        lambda skips, state, previous: model.apply(
            variables, skips, state, previous, (32, 32), method=Rvos.decode
        )
    )
    got = clip(1)
    state = initial_state(tuple(s[:, 0] for s in skips), SLOTS, model.hidden)
    previous = teacher[:, 0]  # frames 0 and 1; then the output of the frame before
    for t in range(steps):
        logits, state = decode(tuple(s[:, t] for s in skips), state, previous)
        np.testing.assert_allclose(np.asarray(got[:, t]), np.asarray(logits), atol=1e-5)
        previous = jax.nn.sigmoid(logits) if t >= 1 else previous
    other = clip(2)
    assert np.abs(np.asarray(other[:, 2] - got[:, 2])).max() > 1e-3  # frame 2: teacher vs own


def test_zero_shot_loss_does_not_depend_on_the_order_of_the_objects(clips):
    model, _ = build_model("rvos", "tiny", one_shot=False)
    variables = jax.jit(model.init, static_argnames="num_objects")(
        jax.random.key(0), clips["frames"][:, 0], num_objects=SLOTS
    )
    batch = jax.tree.map(jnp.asarray, clips)
    loss = jax.jit(
        lambda b: rvos_loss(model, variables["params"], variables["batch_stats"], b, None, 0)[0]
    )
    relabel = jnp.asarray([0, 3, 1, 2] + [0] * 251 + [255], jnp.uint8)  # ids 1, 2, 3 -> 3, 1, 2
    permuted = dict(
        batch, masks=relabel[batch["masks"]], object_valid=batch["object_valid"][:, [0, 2, 3, 1]]
    )
    np.testing.assert_allclose(float(loss(permuted)), float(loss(batch)), rtol=1e-6)
    one_shot, _ = build_model("rvos", "tiny", one_shot=True)
    v1 = jax.eval_shape(lambda: one_shot.init(jax.random.key(0), clips["frames"][:, 0], SLOTS))
    with pytest.raises(ValueError, match="given_frames"):
        jax.eval_shape(
            lambda v: rvos_loss(
                one_shot, v["params"], v["batch_stats"], batch, None, 0, given_frames=3
            ),
            v1,
        )


@pytest.mark.parametrize("one_shot", [True, False])
def test_short_training_lowers_the_loss(clips, one_shot):
    """STEPS AdamW steps on one batch, data-parallel over 8 devices: the loss falls clearly."""
    model, _ = build_model("rvos", "tiny", one_shot=one_shot)
    optimizer, schedule = make_optimizer("adamw", LR, STEPS, weight_decay=0.0, clip_norm=10.0)
    key = jax.random.key(0, impl="unsafe_rbg")
    mesh = sharding.make_mesh()
    variables = rvos.init_variables(model, key, clips)
    state = shard_state(jax.device_get(create_state(variables, optimizer)), mesh)
    step = make_train_step(model, optimizer, mesh, state, key, rvos_loss, schedule=schedule)
    batch = sharding.global_batch(clips, mesh)
    losses = []
    for _ in range(STEPS):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    print("one-shot" if one_shot else "zero-shot", losses[0], losses[-1])
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.9 * losses[0]
    assert step._cache_size() == 1


def test_train_loop_runs_zero_shot_with_unsupervised_validation(tmp_path):
    """vos_jax/configs/rvos_synthetic.py:zeroshot,runlocal through the trainer: clips, the Hungarian
    loss, validation in the unsupervised protocol, and an exported zero-shot checkpoint."""
    from vos_jax.config_files import load_config
    from vos_jax.families import load_model
    from vos_jax.training.loop import train
    from vos_jax.training.writers import read_metrics

    config = load_config("vos_jax/configs/rvos_synthetic.py:zeroshot,runlocal")
    config.synthetic.cache_dir = str(tmp_path / "data")
    summary = train(config, tmp_path / "work")
    assert 0.0 <= summary["val_J&F-Mean"] <= 1.0
    losses = [r["loss"] for r in read_metrics(tmp_path / "work") if "loss" in r]
    assert len(losses) == config.total_steps and np.all(np.isfinite(losses))
    assert list((tmp_path / "work" / "eval").glob("step_*/results/synth-*/00000.png"))
    _, model, _, meta = load_model(summary["model"])
    assert meta["family"] == "rvos" and not model.one_shot
