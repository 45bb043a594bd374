"""The FEELVOS training loss on a triplet (Voigtlaender et al., CVPR 2019, Sec. 3-4; SPEC 1).

A sample is (reference, previous, current) frames with ground truth for all three. The current
frame is matched globally against at most M = 1024 sampled reference pixels per object (eq. 2)
and locally against the previous frame's ground truth in a (2k+1)^2 window, k = 15 at stride 4
(eq. 3-4); the previous-frame probabilities fed to the head are the one-hot of its ground truth
("previous uses its ground truth", Sec. 4). The logits are upsampled to the crop and scored with
the bootstrapped cross-entropy, kept fraction annealed 100% -> 15% (official code).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from vos_jax.losses import bootstrap_fraction, bootstrapped_cross_entropy
from vos_jax.models.feelvos import Feelvos, to_feature_grid, upsample
from vos_jax.ops.matching import global_matching, local_matching, sample_reference


def stride_labels(
    masks: Int[Array, "*B H W"], object_valid: Bool[Array, "B O"]
) -> Int[Array, "*B h w"]:
    """Full-resolution ids (255 void) -> int32 ids at the stride-4 grid (sample j on pixel 4 j,
    where `Feelvos.features` centres it); void, ids >= O and padded objects -> -1."""
    labels = to_feature_grid(masks).astype(jnp.int32)
    num_objects = object_valid.shape[-1]
    in_range = (labels >= 0) & (labels < num_objects)
    safe = jnp.where(in_range, labels, 0)
    batch = labels.shape[0]
    valid = jnp.take_along_axis(object_valid, safe.reshape(batch, -1), axis=1)
    return jnp.where(in_range & valid.reshape(labels.shape), labels, -1)


def sampled_reference(
    key: Array,
    embeddings: Float[Array, "B h w D"],
    labels: Int[Array, "B h w"],
    num_objects: int,
    max_per_object: int,
) -> tuple[Float[Array, "B N D"], Int[Array, "B N"]]:
    """At most M reference pixels per object (FEELVOS training, code): their embeddings flattened
    to [B, O * M, D] and labels (the object, -1 for empty slots). M is capped at h * w: an object
    never has more pixels, so the cap drops nothing and saves matching work on small crops."""
    batch, height, width, dim = embeddings.shape
    m = min(max_per_object, height * width)
    flat_labels = labels.reshape(batch, height * width)
    index, valid = sample_reference(key, flat_labels, num_objects, m)  # [B, O, M]
    flat = embeddings.reshape(batch, height * width, dim)
    reference = jnp.take_along_axis(flat, index.reshape(batch, -1, 1), axis=1)
    objects = jnp.arange(num_objects, dtype=jnp.int32)[None, :, None]
    ref_labels = jnp.where(valid, objects, -1).reshape(batch, -1)
    return reference, ref_labels


def feelvos_loss(
    model: Feelvos,
    params,
    batch_stats,
    batch: dict,
    key: Array,
    step: Int[Array, ""],
    anneal_steps: int = 100_000,
    max_per_object: int = 1024,
    max_displacement: int = 15,
):
    """-> (loss, (new_batch_stats, metrics)) for a batch {'frames' uint8 [B, 3, H, W, 3],
    'masks' uint8 [B, 3, H, W] (255 void), 'object_valid' bool [B, O]} (slot 0 = background).

    One `features` call on all 3B frames (BatchNorm statistics over all of them), then the
    matching maps and `segment` on the current frame. Gradients flow through the matching into
    the embeddings (end-to-end embedding learning, Sec. 3).
    """
    frames, masks = batch["frames"], batch["masks"]
    object_valid = batch["object_valid"].astype(bool)
    num_objects = object_valid.shape[-1]
    size = frames.shape[-3:-1]

    variables = {"params": params, "batch_stats": batch_stats}
    (feats, emb), mutated = model.apply(
        variables, frames, train=True, mutable=["batch_stats"], method=Feelvos.features
    )
    labels = stride_labels(masks, object_valid)  # [B, 3, h, w]
    reference, ref_labels = sampled_reference(
        key, emb[:, 0], labels[:, 0], num_objects, max_per_object
    )
    query = emb[:, 2]
    global_map = global_matching(query, reference, ref_labels, num_objects)
    local_map = local_matching(query, emb[:, 1], labels[:, 1], num_objects, max_displacement)
    previous_probs = jax.nn.one_hot(labels[:, 1], num_objects, dtype=jnp.float32)

    variables = {"params": params, "batch_stats": mutated["batch_stats"]}
    logits, mutated = model.apply(
        variables,
        feats[:, 2],
        global_map,
        local_map,
        previous_probs,
        object_valid,
        train=True,
        mutable=["batch_stats"],
        method=Feelvos.segment,
    )
    fraction = bootstrap_fraction(step, anneal_steps)
    logits = upsample(logits, size)
    loss = bootstrapped_cross_entropy(logits, masks[:, 2], object_valid, fraction)
    metrics = {"loss": loss, "kept_fraction": fraction}
    return loss, (mutated["batch_stats"], metrics)
