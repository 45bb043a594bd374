"""SiamMask tracking speed: per-frame time of the batched tracker for 1, 4, 16, 64 targets, and
the official PyTorch tracker (foolwood/SiamMask `siamese_track`, one target at a time) on the
same frames, same machine, same run when its code and torch are available.

    python benchmarks/siammask.py [--variant paper|tiny] [--targets 1,4,16,64] [--frames 5]
        [--dtype float32|bfloat16] [--rotated_boxes]
        [--official PATH/TO/SiamMask [--official_python PYTHON_WITH_TORCH]]

Random weights (time does not depend on them); real DAVIS frames from ../shared/data/davis-mini
when present, else a random 480x854 frame. Targets are boxes on a grid over the frame. One JSON
line per target count: ms per frame, ms per target, targets/s. `--rotated_boxes` adds the
host-side rotated boxes (OpenCV contours, as the official tracker; off: the device path only).
`--official`: a checkout of foolwood/SiamMask, run by `--official_python` (default: this
interpreter), which needs torch, numpy and OpenCV; the official tracker runs with `mask_enable`,
`refine_enable` and the DAVIS settings on 1 target (its tracker follows one target per call),
with torch's default threads. Its VOT overlap extension (Cython) is not needed and is stubbed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DAVIS = ROOT.parent / "shared/data/davis-mini/DAVIS/JPEGImages/480p/dog"


def frames(count: int) -> np.ndarray:
    """[count, 480, 854, 3] uint8 RGB frames."""
    from PIL import Image

    paths = sorted(DAVIS.glob("*.jpg"))[:count]
    if len(paths) == count:
        return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    return np.random.default_rng(0).integers(0, 256, (count, 480, 854, 3), np.uint8)


def grid_masks(targets: int, height: int, width: int) -> np.ndarray:
    """[1, H, W] slot ids: `targets` boxes of about 1/5 of the frame side on a grid."""
    side = int(np.ceil(np.sqrt(targets)))
    masks = np.zeros((1, height, width), np.int32)
    for k in range(targets):
        row, col = divmod(k, side)
        y0, x0 = row * height // side, col * width // side
        h, w = max(height // side // 2, 12), max(width // side // 2, 12)
        masks[0, y0 + h // 4 : y0 + h // 4 + h, x0 + w // 4 : x0 + w // 4 + w] = k + 1
    return masks


def ours(args, video: np.ndarray, targets: int) -> dict:
    import jax
    import jax.numpy as jnp

    sys.path.insert(0, str(ROOT))
    from vos_jax.families import build_model, siammask

    model, _ = build_model("siammask", args.variant, dtype=jnp.dtype(args.dtype))
    variables = siammask.init_variables(model, jax.random.key(0), {})
    prop = siammask.propagator(
        model, variables, max_objects=targets, rotated_boxes=args.rotated_boxes
    )
    masks = grid_masks(targets, *video.shape[1:3])
    new = np.ones((1, targets + 1), bool)
    none, empty = np.zeros_like(new), np.zeros_like(masks)
    start = time.perf_counter()
    state = jax.block_until_ready(prop.init(video[:1], masks, new))
    state, prediction = prop.step(state, video[1:2], empty, none)
    jax.block_until_ready(prediction)
    compile_s = time.perf_counter() - start
    times = []
    for t in range(args.frames):
        frame = video[1 + (t % (len(video) - 1)) : 2 + (t % (len(video) - 1))]
        start = time.perf_counter()
        state, prediction = prop.step(state, frame, empty, none)
        jax.block_until_ready(prediction)
        times.append(time.perf_counter() - start)
    assert prop.step._cache_size() == 1, "the tracker recompiled"
    per_frame = float(np.median(times))
    return {
        "benchmark": "siammask_tracker",
        "implementation": "vos-jax",
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "variant": args.variant,
        "dtype": args.dtype,
        "size": list(video.shape[1:3]),
        "targets": targets,
        "rotated_boxes": args.rotated_boxes,
        "compile_s": round(compile_s, 2),
        "ms_per_frame_median": round(1e3 * per_frame, 1),
        "ms_per_target": round(1e3 * per_frame / targets, 2),
        "targets_per_s": round(targets / per_frame, 1),
    }


def official(args, video: np.ndarray) -> dict:
    """The official tracker on 1 target (its code tracks one target per call)."""
    line = {"benchmark": "siammask_tracker", "implementation": "official", "targets": 1}
    try:
        import torch
    except ImportError:
        return {**line, "skipped": "torch is not installed"}
    code = Path(args.official)
    if not (code / "tools/test.py").exists():
        return {**line, "skipped": f"{code}: not a foolwood/SiamMask checkout"}
    sys.path[:0] = [str(code), str(code / "experiments/siammask_sharp")]
    vars(np).setdefault("float", float)  # the official code uses the alias NumPy 1.24 removed
    region = types.ModuleType("utils.pyvotkit.region")  # VOT overlaps: a Cython build, unused
    region.vot_overlap = region.vot_float2str = None
    sys.modules["utils.pyvotkit.region"] = region
    import cv2

    cv2.__version__ = "4.1.0"  # its version test reads one character: 2-value findContours
    from custom import Custom  # the official experiments/siammask_sharp model
    from tools.test import siamese_init, siamese_track

    torch.set_num_threads(torch.get_num_threads())
    anchors = {"stride": 8, "ratios": [0.33, 0.5, 1, 2, 3], "scales": [8], "round_dight": 0}
    model = Custom(anchors=anchors).eval()
    hp = {"instance_size": 255, "base_size": 8, "out_size": 127, "seg_thr": 0.35,
          "penalty_k": 0.04, "window_influence": 0.4, "lr": 1.0}  # fmt: skip
    bgr = video[..., ::-1].copy()
    ys, xs = np.nonzero(grid_masks(1, *video.shape[1:3])[0])
    pos = np.array([(xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2])
    size = np.array([xs.max() - xs.min() + 1, ys.max() - ys.min() + 1], np.float64)
    times = []
    with torch.no_grad():
        state = siamese_init(bgr[0], pos, size, model, hp)
        state = siamese_track(state, bgr[1], mask_enable=True, refine_enable=True)
        for t in range(args.frames):
            start = time.perf_counter()
            state = siamese_track(state, bgr[1 + t % (len(bgr) - 1)], True, True)
            times.append(time.perf_counter() - start)
    per_frame = float(np.median(times))
    return {
        **line,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "size": list(video.shape[1:3]),
        "ms_per_frame_median": round(1e3 * per_frame, 1),
        "ms_per_target": round(1e3 * per_frame, 2),
        "targets_per_s": round(1 / per_frame, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="paper")
    parser.add_argument("--targets", default="1,4,16,64")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--rotated_boxes", action="store_true")
    parser.add_argument("--official", default="", help="a foolwood/SiamMask checkout")
    parser.add_argument("--official_python", default=sys.executable, help="with torch")
    parser.add_argument("--official_only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    video = frames(6)
    if args.official_only:
        print(json.dumps(official(args, video)), flush=True)
        return
    for targets in (int(t) for t in args.targets.split(",")):
        print(json.dumps(ours(args, video, targets)), flush=True)
    if args.official:  # in its own interpreter: torch and JAX need not share one environment
        command = [args.official_python, __file__, "--official_only", "--official", args.official]
        command += ["--frames", str(args.frames)]
        done = subprocess.run(command, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode or not lines:
            line = {"benchmark": "siammask_tracker", "implementation": "official"}
            print(json.dumps({**line, "skipped": done.stderr.strip()[-500:]}), flush=True)
        else:
            print(lines[-1], flush=True)


if __name__ == "__main__":
    main()
