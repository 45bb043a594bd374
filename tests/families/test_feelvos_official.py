"""FEELVOS details that follow the official code (tensorflow/models research/feelvos), one test
each: the previous-frame input at inference, evaluation at output stride 8, frozen BatchNorm
statistics, the dynamic head's input order, BatchNorm-free layers and initialisers, and the
optimizer's weight-decay mask, bias multiplier and per-variable clipping."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.conftest import SIZE
from vos_jax.config_files import load_config
from vos_jax.families import feelvos
from vos_jax.models.feelvos import Feelvos
from vos_jax.training.state import clip_per_variable, conv_bias_mask, make_optimizer


def _run(propagator, frames, masks, steps=2):
    new = np.array([[True, True, True, True]])
    state = propagator.init(frames[:1], masks[:1].astype(np.int32), new)
    empty, none = np.zeros((1, *SIZE), np.int32), np.zeros_like(new)
    for t in range(1, steps + 1):
        state, prediction = propagator.step(state, frames[t : t + 1], empty, none)
    return state, prediction


@pytest.mark.parametrize("mode", ["labels", "probs"])
def test_the_head_gets_a_one_hot_of_the_previous_labels(tiny, video, mode):
    """vis_video.py:325-327, embedding_utils.py:686-706, 994-1004: a one-hot of the previous
    frame's predicted labels (the soft probabilities vis_video passes are ignored)."""
    model, variables = tiny
    frames, masks = video
    propagator = feelvos.propagator(model, variables, max_objects=3, previous_input=mode)
    state, _ = _run(propagator, frames, masks)
    fed, labels = np.asarray(state.previous.probs), np.asarray(state.previous.labels)
    one_hot = np.eye(fed.shape[-1])[labels]
    if mode == "labels":
        np.testing.assert_array_equal(fed, one_hot)
    else:
        assert not np.array_equal(fed, one_hot) and np.allclose(fed.sum(-1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(fed.argmax(-1), labels)


def test_inference_runs_at_output_stride_8_with_the_training_weights(tiny, video):
    """vis_video.py:50, eval.sh:77-85: trained at 16, evaluated at 8 (rates 12/24/36)."""
    model, variables = tiny
    frames, masks = video
    assert model.output_stride == 16
    embeddings = {}
    for stride in (8, 16):
        propagator = feelvos.propagator(model, variables, max_objects=3, output_stride=stride)
        state, _ = _run(propagator, frames, masks, steps=1)
        embeddings[stride] = np.asarray(state.previous.embeddings)
        want = model.clone(output_stride=stride).apply(
            variables, frames[1:2], method=Feelvos.features
        )[1]
        np.testing.assert_allclose(embeddings[stride], want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(embeddings[8], embeddings[16], atol=1e-4)


@pytest.mark.parametrize("fine_tune", [False, True])
def test_batch_norm_statistics_are_frozen_unless_fine_tuned(tiny, video, fine_tune):
    """train.py:143 `fine_tune_batch_norm=False`: backbone, ASPP and decoder BN use and keep
    their moving statistics in training (scale and bias still learn)."""
    _, variables = tiny
    model = Feelvos.variant("tiny", fine_tune_batch_norm=fine_tune)
    frames = video[0][:2]
    (feats, _), mutated = model.apply(
        variables, frames, train=True, mutable=["batch_stats"], method=Feelvos.features
    )
    same = jax.tree.map(np.array_equal, mutated["batch_stats"], variables["batch_stats"])
    assert all(jax.tree.leaves(same)) != fine_tune
    eval_feats, _ = model.apply(variables, frames, method=Feelvos.features)
    assert np.allclose(feats, eval_feats, atol=1e-6) != fine_tune


def test_head_input_order_is_features_global_previous_local():
    """embedding_utils.py:717-756: concat([features, global, previous mask, local])."""
    model = Feelvos.variant("tiny", head_layers=0)  # the head is its 1x1 logit conv alone
    batch, h, w, channels, objects = 1, 5, 6, model.decoder_channels, 2
    rng = np.random.default_rng(0)
    features = jnp.asarray(rng.random((batch, h, w, channels), np.float32))
    maps = [jnp.asarray(rng.random((batch, h, w, objects), np.float32)) for _ in range(3)]
    valid = np.ones((batch, objects), bool)
    params = model.init(jax.random.key(0), np.zeros((1, 9, 9, 3), np.uint8))["params"]
    for i, name in enumerate(("global", "previous", "local")):
        kernel = np.zeros((1, 1, channels + 3, 1), np.float32)
        kernel[0, 0, channels + i, 0] = 1.0
        head = {"logit": {"kernel": kernel, "bias": np.zeros(1, np.float32)}}
        global_map, previous, local = maps
        logits = model.apply(
            {"params": {**params, "head": head}},
            features,
            global_map,
            local,
            previous,
            valid,
            method=Feelvos.segment,
        )
        np.testing.assert_allclose(logits, maps[i], rtol=1e-6, err_msg=name)


def test_head_has_no_batch_norm_and_the_official_initialisers():
    """embedding_utils.py:397-423 + deeplab core/utils.py:83-99, model.py:743-763: separable
    convs with bias + ReLU (no BN), truncated normal 0.33 (depthwise), 0.06 (pointwise), 0.01
    (logits), zero biases."""
    model = Feelvos.variant("paper")
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 33, 33, 3), jnp.uint8))
    assert "head" not in shapes["batch_stats"]
    params = Feelvos.variant("tiny").init(jax.random.key(1), np.zeros((1, 33, 33, 3), np.uint8))
    head = params["params"]["head"]
    truncation = 0.8796  # std of a standard normal truncated to [-2, 2]
    for layer, std in (("depthwise", 0.33), ("pointwise", 0.06)):
        kernel = np.asarray(head["conv0"][layer]["conv"]["kernel"])
        assert abs(kernel.std() / (std * truncation) - 1) < 0.15, layer
        assert np.abs(kernel).max() <= 2 * std
        assert not np.any(head["conv0"][layer]["conv"]["bias"])
    logit = np.asarray(head["logit"]["kernel"])
    assert np.abs(logit).max() <= 0.02 and not np.any(head["logit"]["bias"])


def test_weight_decay_skips_depthwise_kernels_biases_and_norms():
    """deeplab: `regularize_depthwise=False`; slim regularises weights only; L2 gradient
    weight_decay * w added before momentum (coupled)."""
    params = {
        "conv": {"kernel": jnp.ones((3, 3, 4, 8)), "bias": jnp.ones(8)},
        "depthwise": {"kernel": jnp.ones((7, 7, 1, 8)), "bias": jnp.ones(8)},
        "bn": {"scale": jnp.ones(8), "bias": jnp.ones(8)},
    }
    zeros = jax.tree.map(jnp.zeros_like, params)
    optimizer, _ = make_optimizer("momentum", 1.0, 10, weight_decay=0.5)
    updates, _ = optimizer.update(zeros, optimizer.init(params), params)
    decayed = jax.tree.map(lambda u: bool(jnp.any(u != 0)), updates)
    assert decayed == {
        "conv": {"kernel": True, "bias": False},
        "depthwise": {"kernel": False, "bias": False},
        "bn": {"scale": False, "bias": False},
    }
    np.testing.assert_allclose(updates["conv"]["kernel"], -0.5)  # lr 1 x 0.5 x w at step 0


def test_bias_multiplier_and_per_variable_clipping():
    """train.py:496-505: bias gradients x2 (conv biases, not a norm's beta), then each
    variable's gradient clipped to norm 5 on its own (`clip_gradient_norms`)."""
    params = {"conv": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}, "bn": {"scale": 1.0}}
    params["bn"] = {"scale": jnp.ones(2), "bias": jnp.ones(2)}
    assert conv_bias_mask(params) == {
        "conv": {"kernel": False, "bias": True},
        "bn": {"scale": False, "bias": False},
    }
    grads = {
        "conv": {"kernel": jnp.full((2, 2), 10.0), "bias": jnp.array([0.3, 0.4])},
        "bn": {"scale": jnp.array([3.0, 4.0]), "bias": jnp.array([0.0, 1.0])},
    }
    clipped, _ = clip_per_variable(5.0).update(grads, optax.EmptyState(), params)
    np.testing.assert_allclose(clipped["conv"]["kernel"], 2.5)  # norm 20 -> 5
    np.testing.assert_allclose(clipped["bn"]["scale"], [3.0, 4.0])  # norm 5: unchanged
    optimizer, _ = make_optimizer(
        "momentum", 1.0, 10, weight_decay=0.0, clip_per_variable_norm=5.0, bias_lr_multiplier=2.0
    )
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    np.testing.assert_allclose(updates["conv"]["bias"], [-0.6, -0.8])  # x2, norm 1 < 5
    np.testing.assert_allclose(updates["bn"]["bias"], [0.0, -1.0])
    np.testing.assert_allclose(updates["conv"]["kernel"], -2.5)


def test_the_paper_configs_take_the_official_recipe():
    for name in ("feelvos_davis17.py", "feelvos_ytvos.py"):
        c = load_config(name)
        assert (c.data.max_gap, c.data.photometric, c.data.reference_apart) == (1, False, True)
        assert c.data.min_stride4_pixels == 10 and not c.data.prior and not c.data.damage
        assert (c.optimizer.name, c.optimizer.learning_rate, c.optimizer.weight_decay) == (
            "momentum",
            7e-4,
            4e-5,
        )
        assert (c.optimizer.clip_per_variable, c.optimizer.bias_lr_multiplier) == (5.0, 2.0)
        assert c.inference.output_stride == 8 and not c.model.fine_tune_batch_norm
        assert c.loss.reduction == "sum" and c.loss.previous_input == "labels"
