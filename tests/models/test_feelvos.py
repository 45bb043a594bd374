"""vos_jax.models.feelvos: init and feature shapes, the shared dynamic head, padded objects, one
compilation, output stride 8 and bfloat16, variant parameter counts."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.models.model_cases import (
    TINY,
    B,
    H,
    W,
    abstract_init,
    count_params,
    h,
    random_maps,
    w,
)
from vos_jax.models.feelvos import (
    Feelvos,
    predict_labels,
    probabilities,
    upsample,
)

# ----------------------------------------------------------------------------- FEELVOS


def test_feelvos_init_and_feature_shapes(tiny, tiny_features):
    model, variables, frames = tiny
    assert set(variables) == {"params", "batch_stats"}
    assert set(variables["params"]) == {"encoder", "decoder", "embedding", "head"}
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))
    feats, emb = tiny_features
    assert feats.shape == (B, h, w, TINY["decoder_channels"]) and feats.dtype == jnp.float32
    assert emb.shape == (B, h, w, TINY["embedding_dim"]) and emb.dtype == jnp.float32
    # The official identity initialiser with noise (embedding_utils.py:867-919): truncated
    # normal noise of stddev 0.03 (|noise| <= 0.06) on 1 at the centre, for channel 0 only of
    # the depthwise kernel ([3, 3, 1, C]: min(in, out) = 1), for channels i -> i pointwise.
    head = variables["params"]["embedding"]
    depthwise, pointwise = np.asarray(head["depthwise"]["kernel"]), head["pointwise"]["kernel"]
    eye = np.zeros(depthwise.shape)
    eye[1, 1, 0, 0] = 1.0
    assert np.abs(depthwise - eye).max() <= 0.06 and np.abs(depthwise - eye).std() > 0.01
    d = TINY["embedding_dim"]
    eye = np.zeros(pointwise.shape)
    eye[0, 0, np.arange(d), np.arange(d)] = 1.0
    assert np.abs(np.asarray(pointwise) - eye).max() <= 0.06
    # Leading dims (e.g. [B, T]) and uint8 frames (scaled by 1 / 255 inside).
    clip = (frames[None] * 255).round().astype(jnp.uint8)
    feats_u8, emb_u8 = jax.jit(model.apply, static_argnames="method")(
        variables, clip, method=Feelvos.features
    )
    assert feats_u8.shape == (1, B, h, w, TINY["decoder_channels"])
    np.testing.assert_allclose(feats_u8[0], feats, atol=1e-5)
    np.testing.assert_allclose(emb_u8[0], emb, atol=1e-5)


def test_segment_shapes_and_any_object_count(tiny, tiny_features, segment):
    _, variables, _ = tiny
    feats, _ = tiny_features
    for num_objects in (1, 5):  # initialised with O = 2
        valid = jnp.ones((B, num_objects), bool)
        logits = segment[False](variables, feats, *random_maps(num_objects), valid)
        assert logits.shape == (B, h, w, num_objects) and logits.dtype == jnp.float32
        assert np.isfinite(np.asarray(logits)).all()


@pytest.mark.parametrize("train", [False, True])
def test_head_is_shared_across_objects(tiny, tiny_features, segment, train):
    _, variables, _ = tiny
    feats, _ = tiny_features
    maps, valid = random_maps(5), jnp.ones((B, 5), bool)
    perm = jnp.array([3, 0, 4, 1, 2])
    logits = segment[train](variables, feats, *maps, valid)
    permuted = segment[train](variables, feats, *[m[..., perm] for m in maps], valid)
    np.testing.assert_allclose(permuted, logits[..., perm], atol=1e-5)


def test_padded_objects_are_ignored(tiny, tiny_features, segment):
    _, variables, _ = tiny
    feats, _ = tiny_features
    maps = random_maps(5)
    valid = jnp.array([[True, True, True, False, False], [True, True, False, False, False]])
    logits = segment[True](variables, feats, *maps, valid)
    probs = probabilities(logits, valid)
    assert probs.dtype == jnp.float32
    assert float(probs[0, ..., 3:].max()) < 1e-6 and float(probs[1, ..., 2:].max()) < 1e-6
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    # The maps of padded objects do not reach valid objects, even through BatchNorm statistics.
    noisy = [jnp.where(valid[:, None, None, :], m, 100.0 * m + 3.0) for m in maps]
    np.testing.assert_allclose(segment[True](variables, feats, *noisy, valid), logits, atol=1e-5)
    labels = jax.jit(predict_labels, static_argnums=2)(logits, valid, (H, W))
    assert labels.shape == (B, H, W) and labels.dtype == jnp.int32
    assert int(labels[0].max()) <= 2 and int(labels[1].max()) <= 1
    assert upsample(probs, (H, W)).shape == (B, H, W, 5)


def test_jit_compiles_once(tiny):
    model, variables, frames = tiny

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(variables, frames, maps, valid):
        feats, emb = model.apply(variables, frames, method=Feelvos.features)
        logits = model.apply(variables, feats, *maps, valid, method=Feelvos.segment)
        return probabilities(logits, valid), emb

    for seed in range(3):
        maps = random_maps(3, seed)
        valid = jnp.array([[True, True, seed > 0], [True, True, True]])
        probs, _ = step(variables, frames + 0.01 * seed, maps, valid)
        assert probs.shape == (B, h, w, 3)


def test_eval_output_stride_8_and_bfloat16(tiny, tiny_features, segment):
    model, variables, frames = tiny
    maps, valid = random_maps(5), jnp.ones((B, 5), bool)
    reference = segment[False](variables, tiny_features[0], *maps, valid)
    for kwargs in ({"output_stride": 8}, {"dtype": jnp.bfloat16}):
        variant = model.clone(**kwargs)

        @jax.jit
        def run(variables, frames, maps, variant=variant):
            feats, emb = variant.apply(variables, frames, method=Feelvos.features)
            return feats, emb, variant.apply(variables, feats, *maps, valid, method=Feelvos.segment)

        feats, emb, logits = run(variables, frames, maps)
        assert feats.shape[:3] == emb.shape[:3] == (B, h, w)
        assert emb.dtype == logits.dtype == jnp.float32
        assert logits.shape == (B, h, w, 5) and np.isfinite(np.asarray(logits)).all()
        if "dtype" in kwargs:  # same variables (float32), computation in bfloat16
            assert feats.dtype == jnp.bfloat16
            scale = float(jnp.abs(reference).max())
            np.testing.assert_allclose(logits, reference, atol=0.1 * scale)


def test_variant_param_counts():
    frames = jnp.zeros((1, 65, 65, 3))
    counts = {}
    for name in ("paper", "mobile", "tiny"):
        variables = abstract_init(Feelvos.variant(name), frames, num_objects=2)
        counts[name] = count_params(variables["params"])
    # paper: ResNet-101 42.50M + ASPP 3.02M + decoder 0.16M + embedding 0.03M + head 0.32M
    assert counts == {"paper": 46_026_667, "mobile": 3_058_219, "tiny": 193_855}
