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
from vos_jax.data import pipeline
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
    config: str | None = None,
    threads: int | None = None,
) -> dict:
    """One JSON-ready line; None: the config's value (crop, objects, batch, clip length
    `frames`). `config`: a config file of the family (default its synthetic one), whose data
    becomes the built-in synthetic videos, generated at least as large as its crop. `threads`:
    also time the steps fed by the trainer's input pipeline with that many threads, a new
    batch every step, as train.py does (`input_ms_per_step`; `input_stall` = its excess over
    the pre-fetched batch's step time, relative)."""
    config = load_config(config or f"{family}_synthetic.py")
    if config.model.family != family:
        raise ValueError(f"--config: a {config.model.family} config, not {family}'s")
    if config.data.source != "synthetic":  # the step's cost does not depend on the pixels
        crop = size or config.data.crop_size
        s = config.synthetic
        s.update(num_videos=4, num_frames=max(s.num_frames, 8), val_videos=1,
                 height=max(s.height, crop[0]), width=max(s.width, crop[1]))  # fmt: skip
        config.data.update(source="synthetic", split="train")
        config.eval.root = ""
    config.model.update(variant=variant, dtype=dtype)
    config.data.update(threads=threads or 1)
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
    dataset = train_dataset(config, train_source(config)[0])
    host_batch = dataset[0]
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
    fed = {}
    if threads:
        iterator = pipeline.make_iterator(dataset, threads, config.data.workers)
        state, metrics = train_step(state, sharding.global_batch(next(iterator), mesh))  # start-up
        jax.block_until_ready(metrics)
        start = time.perf_counter()
        for _ in range(steps):  # the trainer's loop: fetch, place, step (the next fetch overlaps)
            state, metrics = train_step(state, sharding.global_batch(next(iterator), mesh))
        jax.block_until_ready(metrics)
        fed_s = (time.perf_counter() - start) / steps
        fed = {"threads": threads, "input_ms_per_step": round(1e3 * fed_s, 2),
               "input_stall": round(max(fed_s / step_s - 1, 0.0), 3)}  # fmt: skip
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
        **fed, "recompiles": train_step._cache_size() - 1, "loss": float(metrics["loss"]),
    }  # fmt: skip
