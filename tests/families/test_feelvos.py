"""The FEELVOS family's training loss: over a clip it equals a frame-by-frame loop over the
family's one recurrence step (`predict`) with global matching per frame against every frame-0
object pixel, for the paper's triplet (2 given frames) and for training on the model's own
predictions (1 given frame); simulated prior masks replace the given previous mask; gradients
reach every parameter."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vos_jax.data import pipeline, synthetic
from vos_jax.data.sources import DavisFolderSource
from vos_jax.families.feelvos import Previous, predict, stride_labels
from vos_jax.families.feelvos import loss as feelvos_loss
from vos_jax.models.feelvos import Feelvos, upsample
from vos_jax.ops.matching import global_matching

T, K = 5, 2  # clip length, local matching window


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """One batch of 2 real 5-frame clips (synthetic DAVIS through the pipeline, 33x33 crops) and
    the tiny FEELVOS's initial variables."""
    root = synthetic.write_dataset(tmp_path_factory.mktemp("synth"), "davis", 3, 8, (48, 64), 2, 0)
    config = pipeline.SampleConfig(sampling="clip", num_frames=T, crop_size=(33, 33), max_objects=2)
    batch = pipeline.make_dataset(DavisFolderSource(root, "train"), config, 2, seed=0)[0]
    model = Feelvos.variant("tiny")
    variables = model.init(jax.random.key(0, impl="unsafe_rbg"), batch["frames"][:, 0], 3)
    return model, variables, batch


def _responsive(variables):
    """The variables with the head's logit layer scaled up: it starts at 0.01 scale (official
    init), where every loss is near ln O, so that the inputs visibly matter."""
    params = jax.tree.map(lambda x: x, variables["params"])
    params["head"]["logit"]["kernel"] = 300.0 * params["head"]["logit"]["kernel"]
    return {**variables, "params": params}


def _video_losses(logits, masks, valid):
    """NumPy float64 reference of the official per-video loss at 100% kept pixels: each video's
    mean softmax cross-entropy over its valid pixels of every predicted frame."""
    logits, masks, valid = (np.asarray(x, np.float64) for x in (logits, masks, valid))
    out = []
    for b in range(logits.shape[0]):
        z = np.where(valid[b] > 0, logits[b], -1e9)  # [T', H, W, O], valid [O]
        lse = np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)
        ids = masks[b].astype(int)
        ok = (ids < z.shape[-1]) & (ids >= 0)
        ok &= valid[b].ravel()[np.where(ok, ids, 0)] > 0
        target = np.take_along_axis(z, np.where(ok, ids, 0)[..., None], -1)[..., 0]
        out.append(float(np.sum((lse - target)[ok]) / max(ok.sum(), 1)))
    return np.array(out)


def _loop_loss(model, variables, batch, given: int, teacher=False, previous_input="labels"):
    """The same loss as a Python loop over frames of `predict` calls, each frame's previous mask
    the ground truth of a given frame or, for a predicted one, a one-hot of the model's labels
    (`previous_input="labels"`) or its softmax (`teacher`: always the ground truth), global
    matching per frame against every object pixel of frame 0 (the crop has fewer than 1024 per
    object); the per-video losses (NumPy) summed, as the official code."""
    frames, masks = jnp.asarray(batch["frames"]), jnp.asarray(batch["masks"])
    valid = jnp.asarray(batch["object_valid"])
    num_objects, size = valid.shape[1], frames.shape[-3:-1]
    (feats, emb), mutated = model.apply(
        variables, frames, train=True, mutable=["batch_stats"], method=Feelvos.features
    )
    labels = stride_labels(masks, valid)
    b, h, w, d = emb[:, 0].shape
    reference, ref_labels = emb[:, 0].reshape(b, h * w, d), labels[:, 0].reshape(b, h * w)
    one_hot = lambda x: jax.nn.one_hot(x, num_objects, dtype=jnp.float32)
    previous = Previous(emb[:, given - 1], labels[:, given - 1], one_hot(labels[:, given - 1]))
    logits = []
    for t in range(given, T):
        global_map = global_matching(emb[:, t], reference, ref_labels, num_objects)
        frame_logits, probs = predict(
            model, variables, feats[:, t], emb[:, t], global_map, previous, valid, K
        )
        logits.append(upsample(frame_logits, size))
        predicted = jnp.argmax(probs, axis=-1).astype(jnp.int32)
        fed = one_hot(predicted) if previous_input == "labels" else probs
        previous = Previous(emb[:, t], predicted, fed)
        if teacher:
            previous = Previous(emb[:, t], labels[:, t], one_hot(labels[:, t]))
    per_video = _video_losses(jnp.stack(logits, 1), masks[:, given:], valid)
    return float(per_video.sum()), mutated["batch_stats"]


@pytest.mark.parametrize(
    "given,previous_input", [(1, "labels"), (2, "labels"), (T - 1, "labels"), (1, "probs")]
)
def test_equals_a_frame_by_frame_reference(setup, given, previous_input):
    model, variables, batch = setup
    loss, (stats, metrics) = jax.jit(
        lambda p, s, b: feelvos_loss(
            model,
            p,
            s,
            b,
            jax.random.key(1),
            jnp.int32(0),
            max_displacement=K,
            given_frames=given,
            previous_input=previous_input,
        )
    )(variables["params"], variables["batch_stats"], batch)
    want, want_stats = _loop_loss(model, variables, batch, given, previous_input=previous_input)
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["loss"]), want, rtol=1e-5)
    for got, exp in zip(jax.tree.leaves(stats), jax.tree.leaves(want_stats), strict=True):
        np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-6)


def test_own_predictions_are_the_previous_masks_and_gradients_reach_every_parameter(setup):
    """With one given frame, frames 2.. see the model's predictions, not the ground truth: the
    loss differs from teacher forcing; every parameter gets a gradient (none flows through the
    predicted previous masks, which are inputs as at inference)."""
    model, variables, batch = setup
    variables = _responsive(variables)

    def loss(params):
        value, _ = feelvos_loss(
            model,
            params,
            variables["batch_stats"],
            batch,
            jax.random.key(1),
            jnp.int32(0),
            max_displacement=K,
            given_frames=1,
        )
        return value

    own, grads = jax.jit(jax.value_and_grad(loss))(variables["params"])
    forced, _ = _loop_loss(model, variables, batch, 1, teacher=True)
    print("own predictions", float(own), "teacher forced", forced)
    assert abs(float(own) - forced) > 1e-3 * forced
    norms = jax.tree.map(lambda g: float(jnp.sum(jnp.abs(g))), grads)
    assert all(n > 0 for n in jax.tree.leaves(norms)), norms


def test_given_frames_out_of_range(setup):
    model, variables, batch = setup
    with pytest.raises(ValueError, match="given_frames"):
        feelvos_loss(
            model,
            variables["params"],
            variables["batch_stats"],
            batch,
            jax.random.key(1),
            jnp.int32(0),
            given_frames=T,
        )


def test_simulated_prior_replaces_the_given_previous_mask(setup):
    """`prior` in a batch (data.prior: the official training damages the previous mask) is the
    previous mask of the first predicted frame; a prior equal to the ground truth changes
    nothing."""
    model, variables, batch = setup
    variables = _responsive(variables)

    def loss(b):
        value, _ = feelvos_loss(
            model,
            variables["params"],
            variables["batch_stats"],
            b,
            jax.random.key(1),
            jnp.int32(0),
            max_displacement=K,
            given_frames=2,
        )
        return float(value)

    plain = loss(batch)
    assert loss({**batch, "prior": batch["masks"]}) == pytest.approx(plain, rel=1e-6)
    empty = np.zeros_like(batch["masks"])  # every given object lost from the previous frame
    assert abs(loss({**batch, "prior": empty}) - plain) > 1e-5 * plain  # float noise: ~1e-7
