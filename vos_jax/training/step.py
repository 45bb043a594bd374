"""One jitted, sharded training step over global arrays (DESIGN: no pmap, no shard_map).

`train_step(state, batch) -> (state, metrics)` is compiled once per (model, crop, batch, O) with
explicit in/out shardings on a (data, fsdp) mesh and the state donated. The batch is split over
every device; parameters and optimizer slots are replicated, or with an `fsdp` axis > 1 each is
sharded along its largest dimension divisible by the fsdp size (FSDP / ZeRO-3 style: XLA
all-gathers them for the forward pass and reduce-scatters the gradients). Because the loss is
a plain mean over the global batch, gradients and BatchNorm statistics are those of one device
running the whole batch; the device count changes only the summation order.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from vos_jax.sharding import batch_sharding, replicated
from vos_jax.training.state import TrainState


def _fsdp_spec(shape: tuple[int, ...], size: int) -> PartitionSpec:
    """Shard the largest dimension divisible by `size` over 'fsdp' (first one on ties)."""
    dims = sorted(range(len(shape)), key=lambda d: -shape[d])
    for d in dims:
        if shape[d] >= size and shape[d] % size == 0:
            spec = [None] * len(shape)
            spec[d] = "fsdp"
            return PartitionSpec(*spec)
    return PartitionSpec()


def state_sharding(state, mesh: Mesh, fsdp: bool | None = None):
    """NamedShardings for a state pytree (arrays or ShapeDtypeStructs). `fsdp=None`: shard when
    the mesh's fsdp axis is > 1. Optimizer slots have their parameter's shape, so the rule by
    shape shards them like their parameter; scalars (step, counts) stay replicated."""
    size = dict(mesh.shape).get("fsdp", 1)
    if fsdp is None:
        fsdp = size > 1
    if not fsdp or size == 1:
        return jax.tree.map(lambda _: replicated(mesh), state)
    return jax.tree.map(lambda x: NamedSharding(mesh, _fsdp_spec(tuple(x.shape), size)), state)


def shard_state(state, mesh: Mesh, fsdp: bool | None = None):
    """Place a state on the mesh with `state_sharding`, always as new buffers: the step donates
    its input, and the caller's `state` must survive that (device_put would otherwise alias)."""
    return jax.device_put(state, state_sharding(state, mesh, fsdp), may_alias=False)


def make_train_step(
    model,
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    state: TrainState,
    key: jax.Array,
    loss_fn: Callable,
    *,
    schedule: optax.Schedule | None = None,
    fsdp: bool | None = None,
    **loss_kwargs,
) -> Callable:
    """-> `train_step(state, batch) -> (state, metrics)`, jitted once, state donated.

    `state` (or `jax.eval_shape` of it) fixes the state shardings; batches must be global arrays
    sharded with `sharding.batch_sharding(mesh)` (`sharding.global_batch`). Step s uses the key
    `fold_in(key, s)`. Metrics (replicated scalars): the loss function's metrics plus `lr`
    (`schedule(step)`, if given) and `grad_norm` (global norm before clipping).
    `loss_fn(model, params, batch_stats, batch, key, step, **loss_kwargs) -> (loss, (batch_stats,
    metrics))` is the family's loss; `loss_kwargs` are its options (the family's LossOptions).
    """
    state_shardings = state_sharding(state, mesh, fsdp)
    data_sharding = batch_sharding(mesh)

    def train_step(state: TrainState, batch: dict):
        step_key = jax.random.fold_in(key, state.step)

        def loss(params):
            return loss_fn(
                model,
                params,
                state.batch_stats,
                batch,
                step_key,
                state.step,
                **loss_kwargs,
            )

        grads, (batch_stats, metrics) = jax.grad(loss, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = dict(metrics, grad_norm=optax.tree.norm(grads))
        if schedule is not None:
            metrics["lr"] = jnp.asarray(schedule(state.step), jnp.float32)
        new_state = TrainState(
            step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state
        )
        return new_state, metrics

    return jax.jit(
        train_step,
        in_shardings=(state_shardings, data_sharding),
        out_shardings=(state_shardings, replicated(mesh)),
        donate_argnums=0,
    )
