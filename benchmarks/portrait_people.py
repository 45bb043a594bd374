"""How well portrait models segment the people of a DAVIS-layout folder as the app runs them:
`vos-jax portrait`'s recurrence (inference/portrait.py `segment`) from an empty prior, no first
mask given, scored with the DAVIS unsupervised protocol (every frame, void excluded; one proposal,
so J and F are those of the app's mask against the person).

    python benchmarks/portrait_people.py --models selfie,hair,CHECKPOINT \
        [--root ../shared/data/davis-people/DAVIS] [--split val] [--size HxW]

A model is a name `vos-jax portrait --model` takes (selfie, selfie_landscape, hair: from an
installed mediapipe or $VOS_JAX_MEDIAPIPE), a .tflite file or a checkpoint folder; the MediaPipe
models are also found in ../shared/fixtures/mediapipe. One JSON line per (model, sequence).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures" / "mediapipe"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="selfie,selfie_landscape,hair")
    parser.add_argument("--root", default=str(ROOT.parent / "shared/data/davis-people/DAVIS"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--size", default="", help="HxW: the input size (default: the model's)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from vos_jax.data.sources import decode_frame, decode_mask
    from vos_jax.inference.portrait import find_model, segment
    from vos_jax.io.layouts import DavisLayout
    from vos_jax.metrics.davis import evaluate_unsupervised

    if FIXTURES.is_dir():
        os.environ.setdefault("VOS_JAX_MEDIAPIPE", str(FIXTURES))
    size = tuple(int(v) for v in args.size.split("x")) if args.size else None
    layout = DavisLayout(Path(args.root))
    for name in args.models.split(","):
        model, variables, model_size = find_model(name)
        for seq in layout.sequences(args.split):
            paths = layout.frame_paths(seq)
            frames = (decode_frame(p) for p in paths)
            stream = segment(frames, model, variables, size or model_size)
            masks = np.stack([m > 0.5 for _, m in stream])
            gt = np.stack([decode_mask(layout.mask_path(seq, p.stem)) for p in paths])
            gt = np.where((gt > 0) & (gt < 255), 1, gt).astype(np.uint8)  # every object: the person
            result = evaluate_unsupervised(gt, masks.astype(np.uint8))
            print(json.dumps({"model": name, "sequence": seq, "frames": len(paths),
                              "size": list(size or model_size),
                              "J": round(float(result.j.mean()), 4),
                              "F": round(float(result.f.mean()), 4)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
