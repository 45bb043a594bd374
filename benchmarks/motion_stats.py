"""Object motion and events in real DAVIS and in the synthetic presets: one JSON line each.

    python benchmarks/motion_stats.py [--davis ../shared/data/davis-mini] [--videos 40]

Displacement of an object's centroid between consecutive frames relative to its size, its scale
change, and how often objects leave the view or enter it from a sliver (vos_jax/data/motion.py);
the synthetic "davis" preset is tuned to the real figures. Motion is measured on davis-mini's
single-object ground truth; events on its 30 multi-object DAVIS 2017 val videos, where the
published OSVOS masks stand in for the ground truth.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from vos_jax.data.motion import event_statistics, motion_statistics
from vos_jax.data.synthetic import PRESETS, render_video


def _read(folder: Path) -> np.ndarray:
    return np.stack([np.array(Image.open(p)) for p in sorted(folder.glob("*.png"))])


def davis_masks(root: Path):
    """Every annotated sequence under davis-mini (DAVIS/ and gt-only/ Annotations/480p)."""
    for folder in sorted(root.glob("*/Annotations/480p/*")):
        yield _read(folder)


def davis_multi_object_masks(root: Path):
    """The 30 DAVIS 2017 val videos as OSVOS segmented them (results/semi-supervised/osvos)."""
    for folder in sorted((root / "results/semi-supervised/osvos").iterdir()):
        yield _read(folder)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--davis", type=Path, default=Path("../shared/data/davis-mini"))
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--frames", type=int, default=24)
    args = parser.parse_args()
    if args.davis.is_dir():
        motion = motion_statistics(davis_masks(args.davis))
        found = event_statistics(davis_multi_object_masks(args.davis))
        print(json.dumps({"source": f"davis:{args.davis}", **motion, **found}))
    for preset in PRESETS:  # the demo's videos: 144x240, 3 objects
        videos = [
            render_video([0, i], args.frames, (144, 240), 3, False, preset).masks
            for i in range(args.videos)
        ]
        stats = {**motion_statistics(videos), **event_statistics(videos)}
        print(json.dumps({"source": f"synthetic:{preset}", **stats}))


if __name__ == "__main__":
    main()
