"""Training-step throughput: compile time, step time, clips/s per device, FLOPs per step (XLA's
cost analysis of the compiled step) and MFU against the device's peak.

    python benchmarks/train_step.py [--config vos_jax/configs/feelvos_davis17.py] [--variant tiny]
        [--crop 465x465] [--batch 8] [--objects 3] [--steps 10] [--dtype bfloat16]
        [--fsdp 1] [--peak_tflops T]

A synthetic batch of random frames and masks at the training shape (the step's cost does not
depend on the pixels), the config's optimizer and loss, on a mesh over all devices. Prints one
JSON line. MFU = FLOPs per step / step time / (peak per device x devices); the peak is looked up
by device kind (dense bf16 tensor-core figures) or given with --peak_tflops.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vos_jax import sharding  # noqa: E402
from vos_jax.bench.device import peak_tflops  # noqa: E402
from vos_jax.config_files import load_config  # noqa: E402
from vos_jax.families import build_model, get  # noqa: E402
from vos_jax.families.options import to_dict  # noqa: E402
from vos_jax.training import create_state, make_optimizer, make_train_step  # noqa: E402
from vos_jax.training.config import family_options  # noqa: E402
from vos_jax.training.data import data_sample_config  # noqa: E402


def synthetic_batch(batch: int, frames: int, size: tuple[int, int], objects: int) -> dict:
    rng = np.random.default_rng(0)
    height, width = size
    masks = np.zeros((batch, frames, height, width), np.uint8)
    for k in range(objects):  # k + 1 vertical stripes, one per object
        masks[..., k * width // objects : (k + 1) * width // objects] = k + 1
    return {
        "frames": rng.integers(0, 256, (batch, frames, height, width, 3), dtype=np.uint8),
        "masks": masks,
        "object_valid": np.ones((batch, objects + 1), bool),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="vos_jax/configs/feelvos_davis17.py")
    parser.add_argument("--variant", default=None, help="override the config's model variant")
    parser.add_argument("--crop", default=None, help="HxW, default: the config's crop")
    parser.add_argument("--batch", type=int, default=None, help="global batch (default: config)")
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16"])
    parser.add_argument("--fsdp", type=int, default=1)
    parser.add_argument("--peak_tflops", type=float, default=None)
    args = parser.parse_args()

    config = load_config(args.config)
    family = get(config.model.family)
    variant = args.variant or config.model.variant
    dtype = jnp.dtype(args.dtype or config.model.dtype)
    size = (
        tuple(int(v) for v in args.crop.split("x")) if args.crop else tuple(config.data.crop_size)
    )
    batch_size = args.batch or config.data.batch_size
    model, _ = build_model(config.model.family, variant, dtype=dtype)
    mesh = sharding.make_mesh(fsdp=args.fsdp)
    o = config.optimizer
    optimizer, schedule = make_optimizer(
        o.name, o.learning_rate, config.total_steps, o.weight_decay, o.clip_norm or None
    )
    frames = data_sample_config(config).num_frames
    batch = synthetic_batch(batch_size, frames, size, args.objects)
    key = jax.random.key(0, impl="unsafe_rbg")
    state = jax.jit(lambda k: create_state(family.init_variables(model, k, batch), optimizer))(key)
    state = jax.device_put(state, sharding.replicated(mesh))
    train_step = make_train_step(
        model,
        optimizer,
        mesh,
        state,
        key,
        family.loss,
        schedule=schedule,
        **to_dict(family_options(config, "loss")),
    )
    global_batch = sharding.global_batch(batch, mesh)

    start = time.perf_counter()
    compiled = train_step.lower(state, global_batch).compile()
    compile_s = time.perf_counter() - start
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    flops = float(cost.get("flops", 0.0)) if cost else 0.0

    state, metrics = train_step(state, global_batch)  # warm-up
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(args.steps):
        state, metrics = train_step(state, global_batch)
    jax.block_until_ready(metrics)
    step_s = (time.perf_counter() - start) / args.steps

    devices = mesh.size
    peak = peak_tflops(jax.devices()[0].device_kind, args.peak_tflops)
    # cost_analysis counts the whole (SPMD-partitioned) program of one device.
    total_flops = flops * devices if devices > 1 else flops
    mfu = total_flops / step_s / (peak * 1e12 * devices) if peak else None
    print(
        json.dumps(
            {
                "benchmark": "train_step",
                "family": config.model.family,
                "variant": variant,
                "device": jax.devices()[0].device_kind,
                "devices": devices,
                "fsdp": args.fsdp,
                "dtype": dtype.name,
                "crop": list(size),
                "batch": batch_size,
                "objects": args.objects,
                "compile_s": round(compile_s, 2),
                "step_ms": round(step_s * 1e3, 2),
                "clips_per_s_per_device": round(batch_size / step_s / devices, 3),
                "gflops_per_step": round(total_flops / 1e9, 2),
                "peak_tflops_per_device": peak,
                "mfu": None if mfu is None else round(mfu, 4),
                "loss": float(metrics["loss"]),
            }
        )
    )


if __name__ == "__main__":
    main()
