"""Training: plain-pytree state, optimizers, the jitted sharded step, and the train loop; the
loss comes from the family (vos_jax.families)."""

from vos_jax.training.state import TrainState, create_state, make_optimizer
from vos_jax.training.step import make_train_step, shard_state, state_sharding

__all__ = [
    "TrainState",
    "create_state",
    "make_optimizer",
    "make_train_step",
    "shard_state",
    "state_sharding",
]
