"""Frames per second of the DAVIS-480p FEELVOS triplet pipeline: decode + augment to 465x465.

    python benchmarks/input_pipeline.py [--davis DIR] [--source folder|tfds] [--threads N]
        [--workers N] [--batches 30] [--batch-size 8]

Reads real 480p DAVIS frames (default ../shared/data/davis-mini/DAVIS, split val), either straight
from the folder or from a davis_vos TFDS build of it (`--source tfds` builds one in a temporary
directory first). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vos_jax.data import pipeline  # noqa: E402
from vos_jax.data.sources import DavisFolderSource, TfdsVideoSource  # noqa: E402


def make_source(args, tmp: str):
    if args.source == "folder":
        return DavisFolderSource(args.davis, "val")
    from vos_jax.data.build import build_dataset

    build_dataset("davis_vos", "2017_480p", args.davis, tmp)
    return TfdsVideoSource("davis_vos/2017_480p", "val", tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--davis", default=str(REPO.parent / "shared/data/davis-mini/DAVIS"))
    parser.add_argument("--source", choices=["folder", "tfds"], default="folder")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--workers", type=int, default=0, help="grain worker processes")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    config = pipeline.SampleConfig(sampling="triplet", crop_size=(465, 465), max_objects=10)
    with tempfile.TemporaryDirectory() as tmp:
        source = make_source(args, tmp)
        dataset = pipeline.make_dataset(source, config, args.batch_size, seed=0)
        iterator = pipeline.make_iterator(dataset, args.threads, args.workers)
        start = time.perf_counter()
        next(iterator)  # worker start-up and the first batch
        warmup = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(args.batches):
            batch = next(iterator)
        seconds = time.perf_counter() - start
    frames = args.batches * args.batch_size * 3
    line = {
        "benchmark": "input_pipeline",
        "source": args.source,
        "sampling": "triplet",
        "crop": list(batch["frames"].shape[2:4]),
        "threads": args.threads,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "batch_size": args.batch_size,
        "batches": args.batches,
        "first_batch_s": round(warmup, 2),
        "frames_per_s": round(frames / seconds, 1),
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
