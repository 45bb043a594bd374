"""Training-step throughput of any config: `vos-jax bench --mode train` (vos_jax/bench/train.py)
with the config given by file; one JSON line (compile s, ms per step, clips and frames/s, FLOPs
per step, MFU, memory, recompiles).

    python benchmarks/train_step.py [--config vos_jax/configs/feelvos_davis17.py] [--variant tiny]
        [--crop 465x465] [--batch 8] [--objects 3] [--steps 10] [--dtype bfloat16]
        [--fsdp 1] [--peak_tflops T] [--threads N]

`--threads N` also times the steps fed by the trainer's input pipeline (N threads; a new batch
every step) and reports the stall against the pre-fetched batch. The config's data is replaced
by the built-in synthetic videos at its crop (the step's cost does not depend on the pixels);
its model, loss, optimizer and sample shapes are kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vos_jax.bench.train import train  # noqa: E402
from vos_jax.config_files import load_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="vos_jax/configs/feelvos_davis17.py")
    parser.add_argument("--variant", default=None, help="default: the config's")
    parser.add_argument("--crop", default=None, help="HxW, default: the config's crop")
    parser.add_argument("--batch", type=int, default=None, help="global batch (default: config)")
    parser.add_argument("--objects", type=int, default=None)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16"])
    parser.add_argument("--fsdp", type=int, default=1)
    parser.add_argument("--peak_tflops", type=float, default=None)
    parser.add_argument("--threads", type=int, default=None, help="also time real input")
    args = parser.parse_args()
    model = load_config(args.config).model
    size = tuple(int(v) for v in args.crop.split("x")) if args.crop else None
    line = train(
        model.family, args.variant or model.variant, size, args.objects, args.batch,
        dtype=args.dtype or model.dtype, peak=args.peak_tflops, steps=args.steps,
        fsdp=args.fsdp, config=args.config, threads=args.threads,
    )  # fmt: skip
    print(json.dumps({**line, "benchmark": "train_step", "config": args.config}))


if __name__ == "__main__":
    main()
