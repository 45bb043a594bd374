"""Losses: pure functions (logits, targets, masks) -> scalar, computed in float32 (at least).

- `bootstrapped_cross_entropy_per_example`: FEELVOS's loss (Voigtlaender et al., CVPR 2019,
  Sec. 3.4): softmax cross-entropy over the objects of each pixel, averaged over each example's
  hardest pixels only (bootstrapping, as DeepLab's `top_k_percent_pixels`), with the kept
  fraction annealed by `bootstrap_fraction` from 100% to 15% over the first 100k steps (official
  code); `bootstrapped_cross_entropy` pools the kept pixels of the whole batch instead.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int, Integer

from vos_jax.dtypes import accumulation_dtype

_NEG_LOGIT = -1e9


def pixel_cross_entropy(
    logits: Float[ArrayLike, "B H W O"],
    labels: Integer[ArrayLike, "B H W"],
    object_valid: Bool[ArrayLike, "B O"],
) -> tuple[Float[Array, "B H W"], Bool[Array, "B H W"]]:
    """Per-pixel softmax cross-entropy over the valid objects and the mask of pixels that count.

    A pixel counts when its label is a valid object id (0 = background .. O - 1); void labels
    (255, -1), ids >= O and ids of padded objects are ignored (their loss is 0).
    """
    num_objects = logits.shape[-1]
    logits = jnp.where(
        object_valid[:, None, None, :], logits.astype(accumulation_dtype(logits.dtype)), _NEG_LOGIT
    )
    labels = labels.astype(jnp.int32)
    in_range = (labels >= 0) & (labels < num_objects)
    safe = jnp.where(in_range, labels, 0)
    label_valid = jnp.take_along_axis(object_valid, safe.reshape(safe.shape[0], -1), axis=1)
    valid = in_range & label_valid.reshape(labels.shape)
    target = jnp.take_along_axis(logits, safe[..., None], axis=-1)[..., 0]
    loss = jax.nn.logsumexp(logits, axis=-1) - target
    return jnp.where(valid, loss, 0.0), valid


def _hardest(logits, labels, object_valid, top_k_fraction):
    """-> (sum of the kept losses [B], kept count k_b [B]) of each example's hardest pixels."""
    loss, valid = pixel_cross_entropy(logits, labels, object_valid)
    batch = loss.shape[0]
    loss, valid = loss.reshape(batch, -1), valid.reshape(batch, -1)
    n_valid = jnp.sum(valid, axis=1)
    fraction = jnp.clip(jnp.asarray(top_k_fraction, jnp.float32), 0.0, 1.0)
    k = jnp.round(fraction * n_valid.astype(jnp.float32)).astype(jnp.int32)
    k = jnp.clip(k, jnp.minimum(n_valid, 1), n_valid)
    # Losses are >= 0, so void pixels (-1) sort after every valid one.
    ranked = -jnp.sort(-jnp.where(valid, loss, -1.0), axis=1)
    keep = jnp.arange(loss.shape[1])[None, :] < k[:, None]
    return jnp.sum(jnp.where(keep, ranked, 0.0), axis=1), k


def bootstrapped_cross_entropy(
    logits: Float[ArrayLike, "B H W O"],
    labels: Integer[ArrayLike, "B H W"],
    object_valid: Bool[ArrayLike, "B O"],
    top_k_fraction: float | Float[ArrayLike, ""] = 1.0,
) -> Float[Array, ""]:
    """Mean cross-entropy of the hardest `top_k_fraction` of the valid pixels of each example.

    Example b keeps its k_b = round(fraction * n_b) highest per-pixel losses (at least 1 when it
    has n_b >= 1 valid pixels); the result is the sum of all kept losses over the sum of k_b, so
    fraction 1.0 gives the plain mean over all valid pixels of the batch (0 when none). The
    fraction may be traced (annealing): selection is a sort plus a rank mask, static shapes.
    """
    total, k = _hardest(logits, labels, object_valid, top_k_fraction)
    total = jnp.sum(total)
    return total / jnp.maximum(jnp.sum(k), 1).astype(total.dtype)


def bootstrapped_cross_entropy_per_example(
    logits: Float[ArrayLike, "B H W O"],
    labels: Integer[ArrayLike, "B H W"],
    object_valid: Bool[ArrayLike, "B O"],
    top_k_fraction: float | Float[ArrayLike, ""] = 1.0,
) -> Float[Array, " B"]:
    """Each example's mean cross-entropy over its own hardest `top_k_fraction` of valid pixels
    (0 when it has none): the official FEELVOS loss per video (train_utils.py:180-221), whose
    pixels may span several frames stacked as one tall image."""
    total, k = _hardest(logits, labels, object_valid, top_k_fraction)
    return total / jnp.maximum(k, 1).astype(total.dtype)


def bootstrap_fraction(
    step: int | Int[ArrayLike, ""], anneal_steps: int, final: float = 0.15
) -> Float[Array, ""]:
    """Kept fraction of pixels: linear from 1.0 at step 0 to `final` at `anneal_steps`, then
    constant (FEELVOS code: 100% -> 15% over the first 100k steps). Jittable in `step`."""
    if anneal_steps <= 0:
        return jnp.asarray(final, jnp.float32)
    progress = jnp.clip(jnp.asarray(step, jnp.float32) / anneal_steps, 0.0, 1.0)
    return 1.0 - progress * (1.0 - final)


def soft_iou_loss(
    probs: Float[ArrayLike, "*#B N"], targets: Float[ArrayLike, "*#B N"], eps: float = 1e-6
) -> Float[Array, "*#B"]:
    """1 - soft IoU over the last axis (RVOS, official `softIoU`): 1 - sum(p y) / (sum(p + y - p y)
    + eps), for probabilities p (sigmoid outputs) and binary targets y."""
    acc = accumulation_dtype(probs.dtype)
    p, y = probs.astype(acc), targets.astype(acc)
    intersection = jnp.sum(p * y, axis=-1)
    union = jnp.sum(p + y - p * y, axis=-1) + eps
    return 1.0 - intersection / union
