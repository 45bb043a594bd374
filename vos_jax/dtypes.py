"""Numeric precision conventions (DESIGN.md): parameters float32, computation in a compute dtype
(bfloat16 on GPU/TPU), and reductions, normalisation, matching distances and logits in float32.
`model.dtype = "float64"` (with `jax_enable_x64`) widens all of it, for checks that need float32
rounding out of the way (the trainer's 1 device vs 2 processes with FSDP equivalence: see
tests/training/test_multiprocess.py).
"""

import jax.numpy as jnp


def accumulation_dtype(dtype) -> jnp.dtype:
    """The dtype to accumulate `dtype` values in: float32, or float64 when computing in float64."""
    return jnp.promote_types(dtype, jnp.float32)
