"""Per-frame FEELVOS inference of the streaming engine (embeddings, global and local matching,
the dynamic head for every object slot, softmax, upsampling): `vos-jax bench --family feelvos`
(vos_jax/bench/infer.py) with FEELVOS's engine options; one JSON line.

    python benchmarks/feelvos_inference.py [--variant paper|mobile|tiny] [--size 480x854]
        [--objects 10] [--batch 1] [--frames 20] [--global_every 1] [--dtype float32|bfloat16]

Random weights (time does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vos_jax.bench.infer import infer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="tiny")
    parser.add_argument("--size", default="480x854")
    parser.add_argument("--objects", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--global_every", type=int, default=1)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    line = infer("feelvos", args.variant, size, args.objects, args.batch, args.frames, args.dtype,
                 global_every=args.global_every)  # fmt: skip
    print(json.dumps({**line, "benchmark": "feelvos_inference", "global_every": args.global_every}))


if __name__ == "__main__":
    main()
