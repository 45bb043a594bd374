"""Optimal assignment (the Hungarian algorithm) inside jitted code.

SciPy's `linear_sum_assignment` runs through a `jax.pure_callback`: it is exact, the cost
matrices of VOS (slots x objects, at most 10 x 10 per example) are tiny, and an assignment
carries no gradient, so a jittable solver would buy nothing but code. Works under jit and over
a sharded batch (the callback runs per device shard, sequentially over the batch).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int


def _assign(cost: Float[ArrayLike, "B N N"]) -> Int[np.ndarray, "B N"]:
    from scipy.optimize import linear_sum_assignment  # 0.5 s to import: only when traced

    out = np.empty(cost.shape[:2], np.int32)
    for b, matrix in enumerate(np.asarray(cost, np.float64)):
        rows, cols = linear_sum_assignment(matrix)
        out[b, rows] = cols
    return out


def hungarian(cost: Float[Array, "B N N"]) -> Int[Array, "B N"]:
    """Square costs [B, N (rows), N (columns)] -> [B, N] the column assigned to each row, the
    assignment of least total cost. No gradient flows through it."""
    cost = jax.lax.stop_gradient(cost)
    shape = jax.ShapeDtypeStruct(cost.shape[:2], jnp.int32)
    return jax.pure_callback(_assign, shape, cost, vmap_method="sequential")
