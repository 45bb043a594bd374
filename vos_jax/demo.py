"""The quickstart demo: built-in synthetic videos -> a baseline -> DAVIS evaluation.

For now the baseline copies each object's first-frame mask to every frame (the floor any VOS
method must beat); the trainer replaces it with a FEELVOS model trained on the same data.
"""

from __future__ import annotations

from pathlib import Path

from vos_jax.data import synthetic
from vos_jax.io.masks import write_mask

# Small enough for a 2-core CPU in seconds, hard enough that copying the first mask scores badly.
DEMO_DATA = dict(fmt="davis", num_videos=10, num_frames=24, size=(96, 160), num_objects=3)


def copy_first_mask(davis_root: Path, sequences: list[str], out_dir: Path) -> None:
    """Write the first ground-truth mask as the prediction of every frame (DAVIS results layout)."""
    for seq in sequences:
        _, masks = synthetic.read_davis_sequence(davis_root, seq)
        for t in range(len(masks)):
            write_mask(out_dir / seq / f"{t:05d}.png", masks[0])


def run(out: Path, seed: int = 0) -> list:
    """Generate the data under `out`, run the baseline, evaluate it; returns the per-object scores.
    Everything is written inside `out` (and rewritten on a second run)."""
    from vos_jax.cli import build_parser, run_eval

    root = synthetic.write_dataset(out / "synthetic-davis", seed=seed, **DEMO_DATA)
    sequences = (root / "ImageSets" / "2017" / "val.txt").read_text().split()
    results = out / "results" / "copy-first-mask"
    copy_first_mask(root, sequences, results)
    print(f"data: {root} ({len(sequences)} val videos); baseline results: {results}")
    output = out / "eval" / "copy-first-mask"
    # --overwrite: these are the demo's own files, rewritten on every run.
    argv = ["eval", "--davis_root", str(root), "--results", str(results), "--output", str(output)]
    args = build_parser().parse_args([*argv, "--overwrite"])
    return run_eval(args)
