"""Per-frame FEELVOS inference time of the streaming engine (embeddings, global and local
matching, the dynamic head for every object slot, softmax, upsampling).

    python benchmarks/feelvos_inference.py [--variant paper|mobile|tiny] [--size 480x854]
        [--objects 10] [--frames 20] [--global_every 1] [--dtype float32|bfloat16]

Random weights (time does not depend on them). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vos_jax.bench import time_steps  # noqa: E402
from vos_jax.families import build_model, feelvos  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="tiny")
    parser.add_argument("--size", default="480x854")
    parser.add_argument("--objects", type=int, default=10)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--global_every", type=int, default=1)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--output_stride", type=int, default=8)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    model, _ = build_model(
        "feelvos", args.variant, dtype=jnp.dtype(args.dtype), output_stride=args.output_stride
    )
    frame = np.random.default_rng(0).integers(0, 256, (1, height, width, 3), dtype=np.uint8)
    key = jax.random.key(0, impl="unsafe_rbg")
    variables = jax.jit(model.init, static_argnames="num_objects")(key, frame, num_objects=2)
    prop = feelvos.propagator(
        model, variables, max_objects=args.objects, global_every=args.global_every
    )
    compile_s, times = time_steps(prop, frame, args.frames)
    line = {
        "benchmark": "feelvos_inference",
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "variant": args.variant,
        "dtype": args.dtype,
        "output_stride": args.output_stride,
        "size": [height, width],
        "object_slots": args.objects,
        "global_every": args.global_every,
        "compile_s": round(compile_s, 2),
        "ms_per_frame_median": round(1e3 * float(np.median(times)), 2),
        "fps": round(1.0 / float(np.median(times)), 1),
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
