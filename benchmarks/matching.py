"""Speed of FEELVOS global and local matching (`vos_jax.ops.matching`) at DAVIS 480p, stride 4.

    python benchmarks/matching.py [--height 120 --width 214 --dim 100 --objects 3 --repeats 5]
        [--max-displacement 15] [--baseline jit|eager|none]

Global matching uses all H*W reference pixels (inference, no sampling). The local-matching baseline
is written as the official FEELVOS TF code does it (`local_pairwise_distances` and
`local_previous_frame_nearest_neighbor_features_per_object`): pad by k, a Python loop over the
(2k+1)^2 shifts each computing a full [H, W] squared-distance map, stack to [H, W, (2k+1)^2],
(sigmoid(d) - 0.5) * 2, mask by the shifted labels per object and reduce_min. `--baseline jit`
compiles that unrolled graph (slow to compile, reported), `eager` runs it op by op. Times are
medians after compilation, with `block_until_ready`. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vos_jax.ops import matching  # noqa: E402


def official_local_matching(query, previous, labels, num_objects: int, k: int):
    """[H, W, D] x2, [H, W] -> [H, W, O], the official code's shift loop (in jax.numpy)."""
    height, width, _ = query.shape
    padded = jnp.pad(previous, ((k, k), (k, k), (0, 0)))
    padded_labels = jnp.pad(labels, ((k, k), (k, k)), constant_values=-1)
    dists, shifted_labels = [], []
    for y in range(2 * k + 1):
        for x in range(2 * k + 1):
            shifted = padded[y : y + height, x : x + width]
            dists.append(jnp.sum(jnp.square(query - shifted), axis=2))
            shifted_labels.append(padded_labels[y : y + height, x : x + width])
    d = (jax.nn.sigmoid(jnp.stack(dists, axis=2)) - 0.5) * 2  # [H, W, (2k+1)^2]
    offset_labels = jnp.stack(shifted_labels, axis=2)[..., None]
    masks = offset_labels == jnp.arange(num_objects)  # [H, W, (2k+1)^2, O]
    d_tiled = jnp.tile(d[..., None], (1, 1, 1, num_objects))
    return jnp.min(jnp.where(masks, d_tiled, jnp.ones_like(d_tiled)), axis=2)


def timed(fn, *args, repeats: int) -> tuple[float, float, jax.Array]:
    """(first call s, i.e. compile + run; median ms of `repeats` further calls; the output)."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return first, float(np.median(times)) * 1e3, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--width", type=int, default=214)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-displacement", type=int, default=15)
    parser.add_argument("--chunk-size", type=int, default=None, help="global matching chunk")
    parser.add_argument("--tile", type=int, nargs=2, default=None, help="local matching tile")
    parser.add_argument("--baseline", choices=("jit", "eager", "none"), default="jit")
    args = parser.parse_args()
    h, w, d, o, k = args.height, args.width, args.dim, args.objects, args.max_displacement

    keys = jax.random.split(jax.random.key(0), 3)
    query = 0.1 * jax.random.normal(keys[0], (1, h, w, d), jnp.float32)
    previous = 0.1 * jax.random.normal(keys[1], (1, h, w, d), jnp.float32)
    labels = jax.random.randint(keys[2], (1, h, w), 0, o, jnp.int32)
    row = {"benchmark": "feelvos_matching", "device_kind": jax.devices()[0].device_kind}
    row.update(platform=jax.default_backend(), jax=jax.__version__, batch=1, height=h, width=w)
    row.update(dim=d, objects=o, max_displacement=k, reference_pixels=h * w)

    glob = jax.jit(
        lambda q, r, lab: matching.global_matching(q, r, lab, o, chunk_size=args.chunk_size)
    )
    reference, reference_labels = previous.reshape(1, h * w, d), labels.reshape(1, h * w)
    first, ms, _ = timed(glob, query, reference, reference_labels, repeats=args.repeats)
    row.update(global_ms=round(ms, 2), global_compile_s=round(first - ms / 1e3, 2))

    tile = {} if args.tile is None else {"tile": tuple(args.tile)}
    local = jax.jit(lambda q, p, lab: matching.local_matching(q, p, lab, o, k, **tile))
    first, ms, ours = timed(local, query, previous, labels, repeats=args.repeats)
    row.update(local_ms=round(ms, 2), local_compile_s=round(first - ms / 1e3, 2))

    if args.baseline != "none":
        base = lambda q, p, lab: official_local_matching(q[0], p[0], lab[0], o, k)[None]
        base = jax.jit(base) if args.baseline == "jit" else base
        first, ms, theirs = timed(base, query, previous, labels, repeats=min(args.repeats, 3))
        compile_s = first - ms / 1e3 if args.baseline == "jit" else 0.0
        row.update(baseline=f"official shift loop, {args.baseline}", baseline_ms=round(ms, 2))
        row.update(baseline_compile_s=round(compile_s, 2))
        row.update(speedup=round(ms / row["local_ms"], 1))
        row.update(max_abs_diff_vs_baseline=float(jnp.abs(ours - theirs).max()))
    row.update(load_avg_1m=round(os.getloadavg()[0], 2), cpus=os.cpu_count())
    print(json.dumps(row))


if __name__ == "__main__":
    main()
