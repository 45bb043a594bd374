"""The FEELVOS training loss (Voigtlaender et al., CVPR 2019, Sec. 3-4; SPEC 1).

The paper trains on triplets (reference, previous, current) with ground truth for all three: the
current frame is matched globally against at most M = 1024 sampled reference pixels per object
(eq. 2) and locally against the previous frame's ground truth in a (2k+1)^2 window, k = 15 at
stride 4 (eq. 3-4); the previous-frame probabilities fed to the head are the one-hot of its
ground truth ("previous uses its ground truth", Sec. 4). The logits are upsampled to the crop and
scored with the bootstrapped cross-entropy, kept fraction annealed 100% -> 15% (official code).

The same function also trains on clips with only the first frame given, each later frame taking
the model's own previous prediction as the inference engine does (`given_frames=1`). A model
trained only on perfect previous masks trusts them; at inference one false blob then survives and
grows from frame to frame (SPEC 1: "error accumulates through the previous-frame mask").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from vos_jax.losses import bootstrap_fraction, bootstrapped_cross_entropy
from vos_jax.models.feelvos import Feelvos, probabilities, to_feature_grid, upsample
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
    given_frames: int = 2,
):
    """-> (loss, (new_batch_stats, metrics)) for a batch {'frames' uint8 [B, T, H, W, 3],
    'masks' uint8 [B, T, H, W] (255 void), 'object_valid' bool [B, O]} (slot 0 = background).

    Frame 0 is the reference; frames 0 .. g - 1 (g = `given_frames`) come with their ground
    truth; frames g .. T - 1 are predicted in order, each taking as its previous mask (local
    matching labels and previous probabilities) the ground truth of frame t - 1 when that frame
    is given, else the model's own prediction for it (no gradient through it), exactly as the
    inference engine does. g = 2, T = 3 is the paper's triplet (reference, previous with its
    ground truth, current); g = 1 with a clip trains on the engine's own recurrence, so the head
    learns to correct its earlier mistakes instead of trusting a perfect previous mask.

    One `features` call on all B T frames (BatchNorm statistics over all of them), then the
    matching maps and `segment` per predicted frame, in order. Gradients flow through
    the matching into the embeddings (end-to-end embedding learning, Sec. 3). The loss is the
    mean over the predicted frames.
    """
    frames, masks = batch["frames"], batch["masks"]
    object_valid = batch["object_valid"].astype(bool)
    num_objects = object_valid.shape[-1]
    num_frames, size = frames.shape[1], frames.shape[-3:-1]
    if not 1 <= given_frames < num_frames:
        raise ValueError(f"given_frames: expected 1..{num_frames - 1} for T = {num_frames}")

    variables = {"params": params, "batch_stats": batch_stats}
    (feats, emb), mutated = model.apply(
        variables, frames, train=True, mutable=["batch_stats"], method=Feelvos.features
    )
    labels = stride_labels(masks, object_valid)  # [B, T, h, w]
    reference, ref_labels = sampled_reference(
        key, emb[:, 0], labels[:, 0], num_objects, max_per_object
    )

    g = given_frames
    # Global matching is per query pixel: the predicted frames go in as one tall frame.
    query = emb[:, g:]  # [B, T - g, h, w, D]
    examples, steps, height, width, dim = query.shape
    global_maps = global_matching(
        query.reshape(examples, steps * height, width, dim), reference, ref_labels, num_objects
    ).reshape(examples, steps, height, width, num_objects)
    fraction = bootstrap_fraction(step, anneal_steps)

    stats = mutated["batch_stats"]
    previous_labels = labels[:, g - 1]
    previous_probs = jax.nn.one_hot(previous_labels, num_objects, dtype=emb.dtype)
    # Samples are short (3-8 frames), so the recurrence is a static loop: XLA:CPU runs it 2x
    # faster than a lax.scan, rolled or not (tiny model, 65x65 triplet: 105 vs 215 ms fwd+bwd).
    losses = []
    for i, t in enumerate(range(g, num_frames)):
        local_map = local_matching(
            emb[:, t], emb[:, t - 1], previous_labels, num_objects, max_displacement
        )
        logits, mutated = model.apply(
            {"params": params, "batch_stats": stats},
            feats[:, t],
            global_maps[:, i],
            local_map,
            previous_probs,
            object_valid,
            train=True,
            mutable=["batch_stats"],
            method=Feelvos.segment,
        )
        stats = mutated["batch_stats"]
        logits_full = upsample(logits, size)
        losses.append(bootstrapped_cross_entropy(logits_full, masks[:, t], object_valid, fraction))
        # The next frame's previous mask is this prediction, an input as at inference.
        previous_probs = jax.lax.stop_gradient(probabilities(logits, object_valid))
        previous_labels = jnp.argmax(previous_probs, axis=-1).astype(jnp.int32)
    loss = jnp.mean(jnp.stack(losses))
    metrics = {"loss": loss, "kept_fraction": fraction}
    return loss, (stats, metrics)
