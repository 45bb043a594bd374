"""The RVOS training loss (Ventura et al., CVPR 2019, Sec. 3.3; SPEC 2).

A clip [B, T, H, W, 3] goes through the encoder (all frames at once) and the decoder recurrence
(over slots inside each frame, over frames outside: `inference.rvos.decode_clip`). Each slot's
sigmoid output is scored with 1 - soft IoU against its ground-truth object, averaged over the valid
slots and the frames.

- One-shot: slot k is object k; frame 0 takes its ground truth as previous masks, and so does frame
  1 (frame 0's), as in the official training and evaluation; later frames take the model's own
  previous outputs (no gradient through them), as at inference (`given_frames` = 1).
- Zero-shot: the slots are unordered proposals. The Hungarian algorithm matches them to the
  ground-truth objects on the soft-IoU cost at the clip's first frame, and the clip's other frames
  keep that assignment. The assignment runs in SciPy (`linear_sum_assignment`) through a
  `jax.pure_callback`: it is exact, the cost matrix is at most B x 10 x 10, and it carries no
  gradient, so a jittable solver would buy nothing but code.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int
from scipy.optimize import linear_sum_assignment

from vos_jax.inference.rvos import decode_clip, encode
from vos_jax.losses import soft_iou_loss
from vos_jax.models.rvos import Rvos


def object_targets(
    masks: Int[Array, "B T H W"], object_valid: Bool[Array, "B O1"]
) -> tuple[Float[Array, "B T H W O"], Bool[Array, "B O"]]:
    """Ids (0 background, 1..O objects, 255 void) -> binary targets per object slot 1..O and the
    slots' validity (background dropped: RVOS has no background slot)."""
    num_slots = object_valid.shape[-1] - 1
    ids = jnp.arange(1, num_slots + 1, dtype=jnp.int32)
    targets = (masks.astype(jnp.int32)[..., None] == ids).astype(jnp.float32)
    return targets, object_valid[:, 1:].astype(bool)


def _assign(cost: np.ndarray) -> np.ndarray:
    """[B, O, O] cost (prediction, target) -> [B, O] target index of each prediction slot."""
    out = np.empty(cost.shape[:2], np.int32)
    for b, matrix in enumerate(np.asarray(cost, np.float64)):
        rows, cols = linear_sum_assignment(matrix)
        out[b, rows] = cols
    return out


def hungarian_assignment(
    probs: Float[Array, "B N O"], targets: Float[Array, "B N O"], valid: Bool[Array, "B O"]
) -> Int[Array, "B O"]:
    """The target slot of each predicted slot minimising the total soft-IoU loss (Hungarian
    algorithm). Invalid targets cost the same for every prediction, so they never change which
    predictions the valid targets get; the predictions they take are not scored."""
    cost = soft_iou_loss(
        jnp.swapaxes(probs, 1, 2)[:, :, None, :], jnp.swapaxes(targets, 1, 2)[:, None, :, :]
    )  # [B, O_pred, O_target]
    cost = jnp.where(valid[:, None, :], cost, 1.0)
    cost = jax.lax.stop_gradient(cost)
    shape = jax.ShapeDtypeStruct(cost.shape[:2], jnp.int32)
    return jax.pure_callback(_assign, shape, cost, vmap_method="sequential")


def rvos_loss(
    model: Rvos,
    params,
    batch_stats,
    batch: dict,
    key: Array,
    step: Int[Array, ""],
    given_frames: int = 1,
):
    """-> (loss, (new_batch_stats, metrics)) for a batch {'frames' uint8 [B, T, H, W, 3],
    'masks' uint8 [B, T, H, W] (255 void), 'object_valid' bool [B, O + 1]} (slot 0 background).
    `given_frames` (one-shot): frames 1 .. g take the ground truth of the frame before as
    previous masks, later ones the model's own output (frame 0 always its own ground truth)."""
    del key, step
    frames = batch["frames"]
    batch_size, num_frames, height, width = frames.shape[:4]
    targets, valid = object_targets(batch["masks"], batch["object_valid"])
    num_slots = valid.shape[-1]
    if not 0 <= given_frames < num_frames:
        raise ValueError(f"given_frames: expected 0..{num_frames - 1} for T = {num_frames}")

    variables = {"params": params, "batch_stats": batch_stats}
    flat = frames.reshape(batch_size * num_frames, height, width, 3)
    skips, mutated = encode(model, variables, flat, train=True)
    skips = tuple(s.reshape(batch_size, num_frames, *s.shape[1:]) for s in skips)
    teacher = jnp.where(valid[:, None, None, None, :], targets, 0.0) if model.one_shot else None
    logits = decode_clip(
        model,
        variables,
        skips,
        teacher,
        num_slots,
        (height, width),
        given_frames=given_frames,
        feed_back=jax.lax.stop_gradient,
    )
    probs = jax.nn.sigmoid(logits).reshape(batch_size, num_frames, -1, num_slots)
    flat_targets = targets.reshape(batch_size, num_frames, -1, num_slots)
    if not model.one_shot:  # reorder the targets to the predicted slots, per clip
        assignment = hungarian_assignment(probs[:, 0], flat_targets[:, 0], valid)
        flat_targets = jnp.take_along_axis(flat_targets, assignment[:, None, None, :], axis=-1)
        valid = jnp.take_along_axis(valid, assignment, axis=-1)
    per_slot = soft_iou_loss(jnp.swapaxes(probs, -1, -2), jnp.swapaxes(flat_targets, -1, -2))
    weight = jnp.broadcast_to(valid[:, None, :], per_slot.shape).astype(per_slot.dtype)
    loss = jnp.sum(per_slot * weight) / jnp.maximum(jnp.sum(weight), 1.0)
    return loss, (mutated["batch_stats"], {"loss": loss})
