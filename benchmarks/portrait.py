"""Portrait segmentation speed: frames/s of MediaPipe's selfie (256x256) and hair (512x512)
models imported into JAX, batch 1 and 64, against the reference interpreter (ai-edge-litert,
XNNPACK, batch 1: the graph's fixed input) on the same machine in the same run.

    python benchmarks/portrait.py [--models selfie,hair] [--batches 1,64] [--calls 10]
        [--dtype float32|bfloat16] [--threads N] [--xla_flags FLAGS]

The models come from ../shared/fixtures/mediapipe/ (or `--fixtures DIR`); inputs are random
(time does not depend on them). One JSON line per (model, implementation, batch): ms per call,
frames/s. `--threads`: the interpreter's threads (default: this machine's CPUs, as JAX uses).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FILES = {"selfie": "selfie_segmentation.tflite", "hair": "hair_segmentation.tflite"}


def _median_s(fn, calls: int) -> float:
    fn()  # warm-up (compilation)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def ours(path: Path, batch: int, calls: int, dtype: str) -> dict:
    import jax
    import jax.numpy as jnp

    sys.path.insert(0, str(ROOT))
    from vos_jax.convert.mediapipe import import_graph, read_graph
    from vos_jax.models.portrait import build

    graph = read_graph(path)
    kwargs, variables = import_graph(graph)
    model = build(**kwargs, dtype=jnp.dtype(dtype))
    shape = (batch, *graph.tensors[graph.inputs[0]].shape[1:])
    x = jnp.asarray(np.random.default_rng(0).uniform(0, 1, shape), jnp.float32)
    apply = jax.jit(model.apply)
    start = time.perf_counter()
    jax.block_until_ready(apply(variables, x))
    compile_s = time.perf_counter() - start
    seconds = _median_s(lambda: jax.block_until_ready(apply(variables, x)), calls)
    assert apply._cache_size() == 1, "recompiled"
    return {"implementation": "vos-jax", "device": jax.devices()[0].device_kind,
            "jax": jax.__version__, "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "dtype": dtype, "batch": batch, "size": list(shape[1:3]),
            "compile_s": round(compile_s, 2), "ms_per_call": round(1e3 * seconds, 2),
            "frames_per_s": round(batch / seconds, 1)}  # fmt: skip


def reference(path: Path, calls: int, threads: int) -> dict:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as err:
        return {"implementation": "ai-edge-litert", "skipped": f"not installed ({err})"}
    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    detail = it.get_input_details()[0]
    x = np.random.default_rng(0).uniform(0, 1, detail["shape"]).astype(np.float32)

    def call():
        it.set_tensor(detail["index"], x)
        it.invoke()
        it.get_tensor(it.get_output_details()[0]["index"])

    seconds = _median_s(call, calls)
    return {"implementation": "ai-edge-litert (XNNPACK)", "threads": threads, "batch": 1,
            "size": [int(v) for v in detail["shape"][1:3]], "ms_per_call": round(1e3 * seconds, 2),
            "frames_per_s": round(1 / seconds, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="selfie,hair")
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--fixtures", default=str(ROOT.parent / "shared/fixtures/mediapipe"))
    parser.add_argument(
        "--xla_flags", default=None, help="$XLA_FLAGS for ours (default: as `vos-jax portrait` "
        "runs, inference/portrait.py ONE_FRAME_XLA_FLAG; '' for XLA's own defaults)",
    )  # fmt: skip
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.xla_flags is None:
        from vos_jax.inference.portrait import prefer_one_frame_cpu_flags

        prefer_one_frame_cpu_flags()  # before JAX starts its backend
    else:
        os.environ["XLA_FLAGS"] = args.xla_flags
    for name in args.models.split(","):
        path = Path(args.fixtures) / FILES[name]
        if not path.is_file():
            print(json.dumps({"benchmark": "portrait", "model": name, "skipped": f"no {path}"}))
            continue
        line = {"benchmark": "portrait", "model": name}
        for batch in (int(b) for b in args.batches.split(",")):
            print(json.dumps({**line, **ours(path, batch, args.calls, args.dtype)}), flush=True)
        print(json.dumps({**line, **reference(path, args.calls, args.threads)}), flush=True)


if __name__ == "__main__":
    main()
