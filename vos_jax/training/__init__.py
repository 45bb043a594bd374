"""Training: plain-pytree state, optimizers, the FEELVOS loss and the jitted, sharded step."""

from vos_jax.training.feelvos_loss import feelvos_loss
from vos_jax.training.state import TrainState, create_state, make_optimizer
from vos_jax.training.step import make_train_step, shard_state, state_sharding

__all__ = [
    "TrainState",
    "create_state",
    "feelvos_loss",
    "make_optimizer",
    "make_train_step",
    "shard_state",
    "state_sharding",
]
