"""Object motion in real DAVIS ground truth and in the synthetic presets: one JSON line each.

    python benchmarks/motion_stats.py [--davis ../shared/data/davis-mini] [--videos 20]

Displacement of an object's centroid between consecutive frames relative to its size, and its
scale change (vos_jax/data/motion.py); the synthetic "davis" preset is tuned to the real figures.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from vos_jax.data.motion import motion_statistics
from vos_jax.data.synthetic import PRESETS, render_video


def davis_masks(root: Path):
    """Every annotated sequence under davis-mini (DAVIS/ and gt-only/ Annotations/480p)."""
    for folder in sorted(root.glob("*/Annotations/480p/*")):
        yield np.stack([np.array(Image.open(p)) for p in sorted(folder.glob("*.png"))])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--davis", type=Path, default=Path("../shared/data/davis-mini"))
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--frames", type=int, default=24)
    args = parser.parse_args()
    if args.davis.is_dir():
        print(
            json.dumps(
                {"source": f"davis:{args.davis}", **motion_statistics(davis_masks(args.davis))}
            )
        )
    for preset in PRESETS:  # the demo's videos: 96x160, 3 objects
        videos = (
            render_video([0, i], args.frames, (96, 160), 3, False, preset).masks
            for i in range(args.videos)
        )
        print(json.dumps({"source": f"synthetic:{preset}", **motion_statistics(videos)}))


if __name__ == "__main__":
    main()
