"""Per-frame RVOS inference time of the streaming engine (ResNet encoder + skip projections, the
ConvLSTM decoder over every object slot in order, upsampling to the frame).

    python benchmarks/rvos.py [--variant paper|resnet50|resnet34|tiny] [--size 256x448]
        [--objects 2] [--frames 10] [--zero_shot] [--dtype float32|bfloat16]

Random weights (time does not depend on them). Prints one JSON line. The official PyTorch code
on the project's 2-core CPU (2 threads, median; issue 7): 256x448 one-shot 429 ms/frame with 2
slots, 634 ms with 10; 240x427: 411 and 697 ms.
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

from vos_jax.bench import time_calls, time_steps  # noqa: E402
from vos_jax.families import build_model, rvos  # noqa: E402
from vos_jax.models.rvos import Rvos  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="paper")
    parser.add_argument("--size", default="256x448")
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--zero_shot", action="store_true")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    model, _ = build_model(
        "rvos", args.variant, one_shot=not args.zero_shot, dtype=jnp.dtype(args.dtype)
    )
    frame = np.random.default_rng(0).integers(0, 256, (1, height, width, 3), dtype=np.uint8)
    variables = jax.jit(model.init, static_argnames="num_objects")(
        jax.random.key(0), frame, num_objects=1
    )
    prop = rvos.propagator(model, variables, max_objects=args.objects)
    compile_s, times = time_steps(prop, frame, args.frames)
    # The encoder alone (the part that does not grow with the slots).
    features = jax.jit(lambda v, x: model.apply(v, x, method=Rvos.features))
    encoder = time_calls(features, variables, frame, calls=args.frames)
    line = {
        "benchmark": "rvos_inference",
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "variant": args.variant,
        "mode": "zero-shot" if args.zero_shot else "one-shot",
        "dtype": args.dtype,
        "size": [height, width],
        "object_slots": args.objects,
        "compile_s": round(compile_s, 2),
        "ms_per_frame_median": round(1e3 * float(np.median(times)), 1),
        "encoder_ms_median": round(1e3 * float(np.median(encoder)), 1),
        "fps": round(1.0 / float(np.median(times)), 2),
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
