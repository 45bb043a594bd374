"""Training state as a plain pytree and the optimizers the configs name.

- `momentum` (DeepLab's TF-slim training, as Voigtlaender et al. 2019's official train.py): SGD
  with momentum 0.9 on a poly schedule lr * (1 - step / total_steps) ** 0.9 (train.py:71-89),
  weight decay 4e-5 as TF-slim's `l2_regularizer`: an L2 penalty whose gradient is added before
  momentum (coupled), on conv / dense kernels only, not on depthwise kernels
  (`regularize_depthwise=False`), biases or normalisation parameters (`slim_decay_mask`). Then, as
  train.py:496-505: bias gradients x `bias_lr_multiplier` (official 2), each variable's gradient
  clipped to norm `clip_per_variable` on its own (official 5, `clip_gradient_norms`).
- `adam` (as Ventura et al. 2019's official PyTorch training): `torch.optim.Adam` with
  `weight_decay`, i.e. an L2 gradient term on every parameter added before Adam (coupled), at a
  constant learning rate (after an optional warmup).
- `adamw`: AdamW (decoupled decay on kernels) with linear warmup + cosine decay.

All may clip the gradient by global norm first (`clip_norm`, 0: none) and scale the updates of
the backbone (`backbone`: a params path, the model's `encoder` subtree by default, or a part of
it such as `encoder/base`) by `backbone_lr_multiplier`.
"""

from __future__ import annotations

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from vos_jax.dtypes import accumulation_dtype

BACKBONE = "encoder"  # every model names its backbone submodule `encoder`
OPTIMIZERS = ("momentum", "adam", "adamw")


@flax.struct.dataclass
class TrainState:
    """Everything a training step changes: step counter, parameters, BatchNorm statistics and
    optimizer state. A pytree: jit, device_put and orbax take it as it is."""

    step: Any  # [] int32: a jax.Array, or host NumPy after device_get, or a ShapeDtypeStruct
    params: Any
    batch_stats: Any
    opt_state: Any


def make_schedule(
    name: str, learning_rate: float, total_steps: int, warmup_steps: int = 0
) -> optax.Schedule:
    """Poly (power 0.9, to 0 at `total_steps`) for `momentum`, constant for `adam`, cosine for
    `adamw`; all after an optional linear warmup of `warmup_steps`."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {name!r}")
    if name == "adamw":
        return optax.warmup_cosine_decay_schedule(
            0.0, learning_rate, max(warmup_steps, 0), max(total_steps, warmup_steps + 1)
        )
    if name == "adam":
        decay = optax.constant_schedule(learning_rate)
    else:
        decay = optax.polynomial_schedule(
            learning_rate, 0.0, power=0.9, transition_steps=max(total_steps - warmup_steps, 1)
        )
    if warmup_steps <= 0:
        return decay
    warmup = optax.linear_schedule(0.0, learning_rate, warmup_steps)
    return optax.join_schedules([warmup, decay], [warmup_steps])


def backbone_mask(params, path: str = BACKBONE):
    """True for leaves under the "/"-separated params `path` (e.g. "encoder/base"), or under any
    of several comma-separated paths ("backbone,cls,loc")."""
    prefixes = [tuple(p.split("/")) for p in path.split(",") if p]
    return flax.traverse_util.path_aware_map(
        lambda names, _: any(names[: len(k)] == k for k in prefixes), flax.core.unfreeze(params)
    )


def decay_mask(params):
    """Weight decay applies to kernels (ndim > 1), not to biases or BatchNorm scales."""
    return jax.tree.map(lambda p: jnp.ndim(p) > 1, params)


def is_depthwise(kernel) -> bool:
    """A depthwise conv kernel [k, k, 1, C] with k > 1 (no model here has a 1-channel input)."""
    shape = jnp.shape(kernel)
    return len(shape) == 4 and shape[2] == 1 and shape[0] * shape[1] > 1


def slim_decay_mask(params):
    """TF-slim's regularised variables in DeepLab's code: conv and dense kernels, not depthwise
    kernels (`regularize_depthwise=False`), biases or normalisation parameters."""
    return jax.tree.map(lambda p: jnp.ndim(p) > 1 and not is_depthwise(p), params)


def conv_bias_mask(params):
    """True for conv / dense biases (a `bias` beside a `kernel`); a norm's `bias` (beside its
    `scale`) is TF-slim's `beta`, which the official bias multiplier does not touch."""

    def walk(tree):
        return {
            k: walk(v) if isinstance(v, dict) else (k == "bias" and "kernel" in tree)
            for k, v in tree.items()
        }

    return walk(flax.core.unfreeze(params))


def clip_per_variable(max_norm: float) -> optax.GradientTransformation:
    """Each variable's gradient scaled to norm <= `max_norm` on its own (TF-slim's
    `clip_gradient_norms`, `tf.clip_by_norm` per variable), unlike a global-norm clip."""

    def clip(g, _):
        norm = jnp.sqrt(jnp.sum(jnp.square(g.astype(jnp.float32))))
        return (g * jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-30))).astype(g.dtype)

    return optax.stateless_with_tree_map(clip)


def make_optimizer(
    name: str = "momentum",
    learning_rate: float = 7e-4,
    total_steps: int = 200_000,
    weight_decay: float = 4e-5,
    clip_norm: float | None = None,
    backbone_lr_multiplier: float = 1.0,
    warmup_steps: int = 0,
    clip_per_variable_norm: float = 0.0,
    bias_lr_multiplier: float = 1.0,
    backbone: str = BACKBONE,
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """-> (optimizer, learning-rate schedule); the schedule gives the `lr` metric of a step.
    `clip_per_variable_norm` and `bias_lr_multiplier` apply to `momentum` (0 / 1: off)."""
    schedule = make_schedule(name, learning_rate, total_steps, warmup_steps)
    parts = [optax.clip_by_global_norm(clip_norm)] if clip_norm else []
    if name == "momentum":
        if weight_decay:
            parts.append(optax.add_decayed_weights(weight_decay, mask=slim_decay_mask))
        if bias_lr_multiplier != 1.0:
            parts.append(optax.masked(optax.scale(bias_lr_multiplier), conv_bias_mask))
        if clip_per_variable_norm:
            parts.append(clip_per_variable(clip_per_variable_norm))
        parts += [optax.trace(decay=0.9), optax.scale_by_learning_rate(schedule)]
    elif name == "adam":
        if weight_decay:
            parts.append(optax.add_decayed_weights(weight_decay))  # torch Adam: every parameter
        parts += [optax.scale_by_adam(), optax.scale_by_learning_rate(schedule)]
    else:
        parts.append(optax.adamw(schedule, weight_decay=weight_decay, mask=decay_mask))
    if backbone_lr_multiplier != 1.0:
        mask = functools.partial(backbone_mask, path=backbone)
        parts.append(optax.masked(optax.scale(backbone_lr_multiplier), mask))
    return optax.chain(*parts), schedule


def create_state(variables: dict, optimizer: optax.GradientTransformation) -> TrainState:
    """A fresh state from a family's initial `variables` ({'params', optional 'batch_stats'})
    and the optimizer on its params. Variables are float32, or float64 for a model that
    computes in float64."""
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=optimizer.init(params),
    )


def widen(variables, dtype) -> dict:
    """Float leaves of `variables` in the accumulation dtype of compute dtype `dtype` (float32,
    or float64 for a float64 model)."""
    wide = accumulation_dtype(dtype)
    return jax.tree.map(
        lambda v: v.astype(wide) if jnp.issubdtype(v.dtype, jnp.floating) else v, variables
    )
