"""`vos-jax bench --mode infer`: a family's streaming inference step (the engine's, every object
slot, B videos in one call) at a static size: compile seconds, steady-state ms per step, frames/s,
FLOPs per frame, achieved TFLOP/s and MFU, memory, and the recompiles after warm-up (must be 0).
Random weights and frames: the time depends on neither."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vos_jax import families
from vos_jax.bench import device, time_steps


def infer(
    family: str,
    variant: str = "tiny",
    size: tuple[int, int] = (240, 432),
    objects: int = 3,
    batch: int = 1,
    frames: int = 10,
    dtype: str = "float32",
    peak: float | None = None,
    **options,
) -> dict:
    """One JSON-ready line; `options`: the family's inference options (e.g. input_height)."""
    fam = families.get(family)
    model, _ = families.build_model(family, variant, dtype=jnp.dtype(dtype))
    height, width = size
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
    example = {  # what init_variables reads: a training batch's shapes
        "frames": frame[:, None],
        "masks": np.zeros((batch, 1, height, width), np.uint8),
        "object_valid": np.ones((batch, objects + 1), bool),
    }
    key = jax.random.key(0, impl="unsafe_rbg")
    variables = jax.jit(lambda k: fam.init_variables(model, k, example))(key)
    prop = fam.propagator(model, variables, max_objects=objects, **options)
    compile_s, times = time_steps(prop, frame, frames)
    # The compiled step the timed calls ran, for its costs (a cache hit: nothing recompiles).
    state = prop.init(frame, np.zeros((batch, height, width), np.int32), example["object_valid"])
    none = np.zeros((batch, objects + 1), bool)
    compiled = prop.step.lower(state, frame, np.zeros((batch, height, width), np.int32), none)
    compiled = compiled.compile()
    step_s = float(np.median(times))
    flops = device.compiled_flops(compiled)
    kind = jax.devices()[0].device_kind
    return {
        "benchmark": "bench", "mode": "infer", "family": family, "variant": variant,
        "device": kind, "jax": jax.__version__, "dtype": dtype, "size": [height, width],
        "objects": objects, "batch": batch, "frames": frames,
        "compile_s": round(compile_s, 2), "ms_per_step": round(1e3 * step_s, 3),
        "ms_per_frame": round(1e3 * step_s / batch, 3), "frames_per_s": round(batch / step_s, 2),
        "gflops_per_frame": round(flops / batch / 1e9, 4),
        **device.utilisation(flops, step_s, device.peak_tflops(kind, peak)),
        **device.memory(compiled),
        "recompiles": prop.step._cache_size() + prop.init._cache_size() - 2,
    }  # fmt: skip
