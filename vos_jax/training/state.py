"""Training state as a plain pytree and the optimizers of the families.

- `momentum` (Voigtlaender et al. 2019, SPEC 1; DeepLab code): SGD with momentum 0.9 on a poly
  schedule lr * (1 - step / total_steps) ** 0.9, and weight decay 4e-5 as an L2 penalty on conv /
  dense kernels added to the gradient before momentum, as the official TF-slim `l2_regularizer` does
  (coupled, not AdamW-style decoupled; biases and BatchNorm are not decayed).
- `adamw`: AdamW (decoupled decay on kernels) with linear warmup + cosine decay.

Both clip the gradient by global norm first (`clip_norm=None`: no clipping) and scale the updates
of the backbone (the `encoder` subtree of the model) by `backbone_lr_multiplier`.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from vos_jax.dtypes import accumulation_dtype

BACKBONE = "encoder"  # every model names its backbone submodule `encoder`
OPTIMIZERS = ("momentum", "adamw")


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
    """Poly (power 0.9, to 0 at `total_steps`) for `momentum`, cosine for `adamw`; both after an
    optional linear warmup of `warmup_steps`."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {name!r}")
    if name == "adamw":
        return optax.warmup_cosine_decay_schedule(
            0.0, learning_rate, max(warmup_steps, 0), max(total_steps, warmup_steps + 1)
        )
    decay = optax.polynomial_schedule(
        learning_rate, 0.0, power=0.9, transition_steps=max(total_steps - warmup_steps, 1)
    )
    if warmup_steps <= 0:
        return decay
    warmup = optax.linear_schedule(0.0, learning_rate, warmup_steps)
    return optax.join_schedules([warmup, decay], [warmup_steps])


def _top_level_mask(params, names: tuple[str, ...]):
    """Params-shaped bool tree: True for leaves under a top-level key in `names`."""
    return {k: jax.tree.map(lambda _, k=k: k in names, v) for k, v in params.items()}


def backbone_mask(params):
    return _top_level_mask(params, (BACKBONE,))


def decay_mask(params):
    """Weight decay applies to kernels (ndim > 1), not to biases or BatchNorm scales."""
    return jax.tree.map(lambda p: jnp.ndim(p) > 1, params)


def make_optimizer(
    name: str = "momentum",
    learning_rate: float = 7e-4,
    total_steps: int = 200_000,
    weight_decay: float = 4e-5,
    clip_norm: float | None = None,
    backbone_lr_multiplier: float = 1.0,
    warmup_steps: int = 0,
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """-> (optimizer, learning-rate schedule); the schedule gives the `lr` metric of a step."""
    schedule = make_schedule(name, learning_rate, total_steps, warmup_steps)
    parts = [optax.clip_by_global_norm(clip_norm)] if clip_norm else []
    if name == "momentum":
        if weight_decay:
            parts.append(optax.add_decayed_weights(weight_decay, mask=decay_mask))
        parts += [optax.trace(decay=0.9), optax.scale_by_learning_rate(schedule)]
    else:
        parts.append(optax.adamw(schedule, weight_decay=weight_decay, mask=decay_mask))
    if backbone_lr_multiplier != 1.0:
        parts.append(optax.masked(optax.scale(backbone_lr_multiplier), backbone_mask))
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
