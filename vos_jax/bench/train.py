"""`vos-jax bench --mode train`: one family's training step (its loss, optimizer and data at the
config's training shape, sharded over every device) from its synthetic config: compile seconds,
ms per step, clips and frames per second, FLOPs per step (XLA's cost analysis of the partitioned
program, x devices), MFU, memory, and the recompiles after warm-up (must be 0). The batch is a
real one of the built-in synthetic videos, made once: the step's time, not the input pipeline's.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from vos_jax import families, sharding
from vos_jax.bench import device
from vos_jax.config_files import load_config
from vos_jax.families.options import to_dict
from vos_jax.training import create_state, make_train_step
from vos_jax.training.config import family_options, validate
from vos_jax.training.data import train_dataset, train_source
from vos_jax.training.loop import optimizer_from_config
from vos_jax.training.state import widen


def train(
    family: str,
    variant: str = "tiny",
    size: tuple[int, int] | None = None,
    objects: int | None = None,
    batch: int | None = None,
    frames: int | None = None,
    dtype: str = "float32",
    peak: float | None = None,
    steps: int = 5,
    fsdp: int = 1,
) -> dict:
    """One JSON-ready line; None: the synthetic config's value (crop, objects, batch, clip
    length `frames`)."""
    config = load_config(f"{family}_synthetic.py")
    config.model.update(variant=variant, dtype=dtype)
    config.data.update(threads=1)
    config.mesh.fsdp = fsdp
    for key, value in (("crop_size", size), ("max_objects", objects), ("batch_size", batch),
                       ("num_frames", frames)):  # fmt: skip
        if value is not None:
            config.data[key] = tuple(value) if key == "crop_size" else value
    validate(config)
    fam = families.get(family)
    model, _ = families.build_model(family, variant, dtype=jnp.dtype(dtype))
    mesh = sharding.make_mesh(config.mesh.data, fsdp)
    optimizer, schedule = optimizer_from_config(config)
    host_batch = train_dataset(config, train_source(config)[0])[0]
    key = jax.random.key(0, impl="unsafe_rbg")
    init = lambda k: create_state(widen(fam.init_variables(model, k, host_batch), model.dtype),
                                  optimizer)  # fmt: skip
    state = jax.jit(init, out_shardings=sharding.replicated(mesh))(key)
    train_step = make_train_step(
        model, optimizer, mesh, state, key, fam.loss, schedule=schedule,
        **to_dict(family_options(config, "loss")),
    )  # fmt: skip
    global_batch = sharding.global_batch(host_batch, mesh)
    start = time.perf_counter()
    state, metrics = train_step(state, global_batch)  # compiles
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        state, metrics = train_step(state, global_batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    step_s = float(np.median(times))
    # The program the timed calls ran, for its costs (compiled once more, outside the timings).
    compiled = train_step.lower(state, global_batch).compile()
    devices = mesh.size
    flops = device.compiled_flops(compiled) * devices  # the partitioned program is per device
    clips, length = host_batch["frames"].shape[:2]
    kind = jax.devices()[0].device_kind
    return {
        "benchmark": "bench", "mode": "train", "family": family, "variant": variant,
        "device": kind, "devices": devices, "fsdp": fsdp, "jax": jax.__version__,
        "dtype": dtype, "size": list(host_batch["frames"].shape[2:4]),
        "objects": int(host_batch["object_valid"].shape[-1] - 1), "batch": int(clips),
        "frames": int(length), "compile_s": round(compile_s, 2),
        "ms_per_step": round(1e3 * step_s, 2), "clips_per_s": round(clips / step_s, 3),
        "frames_per_s": round(clips * length / step_s, 2),
        "gflops_per_step": round(flops / 1e9, 3),
        **device.utilisation(flops, step_s, device.peak_tflops(kind, peak), devices),
        **device.memory(compiled),
        "recompiles": train_step._cache_size() - 1, "loss": float(metrics["loss"]),
    }  # fmt: skip
