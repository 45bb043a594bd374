"""The quickstart demo: train FEELVOS on freshly generated synthetic videos, evaluate it on
held-out ones with eval.py, compare with the copy-first-mask baseline, write an overlay video.

Everything goes under `out/`: `data/` (the videos), `train/` (the train.py workdir: metrics,
TensorBoard, checkpoints, `models/step_<N>`), `results/`, `eval/`, `overlay/`. Running it again
resumes (or reuses) the training and rewrites the evaluation.
"""

from __future__ import annotations

from pathlib import Path

import vos_jax
from vos_jax.data import synthetic
from vos_jax.io.masks import read_mask, write_mask
from vos_jax.io.video import OverlayWriter

DEFAULT_CONFIG = Path(vos_jax.__file__).resolve().parents[1] / "configs" / "feelvos_synthetic.py"


def copy_first_mask(davis_root: Path, sequences: list[str], out_dir: Path) -> None:
    """Write the first ground-truth mask as the prediction of every frame (DAVIS results layout):
    the floor any VOS method must beat."""
    for seq in sequences:
        _, masks = synthetic.read_davis_sequence(davis_root, seq)
        for t in range(len(masks)):
            write_mask(out_dir / seq / f"{t:05d}.png", masks[0])


def _eval(davis_root: Path, results: Path, output: Path, extra: list[str]) -> dict:
    """`eval.py --davis_root ... --results ... [--checkpoint ...]` -> the global row."""
    from vos_jax.cli import build_parser, run_eval
    from vos_jax.metrics import report

    argv = ["eval", "--davis_root", str(davis_root), "--results", str(results)]
    # --overwrite: these are the demo's own files, rewritten on every run.
    args = build_parser().parse_args([*argv, "--output", str(output), "--overwrite", *extra])
    return report.global_table(run_eval(args), ("J", "F"))


def run(out: Path, config: str | None = None) -> dict:
    """Train, evaluate, compare, overlay; -> {'feelvos': global row, 'copy-first-mask': ...}."""
    from vos_jax.config_files import load_config
    from vos_jax.training.data import synthetic_root
    from vos_jax.training.loop import train

    out = Path(out).absolute()
    spec = config or str(DEFAULT_CONFIG)
    train_config = load_config(spec)
    train_config.synthetic.cache_dir = str(out / "data")
    root = synthetic_root(train_config.synthetic)
    sequences = (root / "ImageSets" / "2017" / "val.txt").read_text().split()
    print(f"data: {root} ({len(sequences)} held-out val videos)")

    summary = train(train_config, out / "train")
    model = summary["model"]
    print(f"trained model: {model}")

    engine = ["--checkpoint", model, "--config", spec]
    scores = {
        "feelvos": _eval(root, out / "results" / "feelvos", out / "eval" / "feelvos", engine),
    }
    baseline = out / "results" / "copy-first-mask"
    copy_first_mask(root, sequences, baseline)
    scores["copy-first-mask"] = _eval(root, baseline, out / "eval" / "copy-first-mask", [])

    # One held-out video with the masks eval.py predicted drawn over its frames.
    seq = sequences[0]
    frames, _ = synthetic.read_davis_sequence(root, seq)
    overlay = out / "overlay" / f"{seq}.mp4"
    writer = OverlayWriter(overlay)
    for t, frame in enumerate(frames):
        writer.write(frame, read_mask(out / "results" / "feelvos" / seq / f"{t:05d}.png"))
    writer.close()
    ours, floor = scores["feelvos"]["J&F-Mean"], scores["copy-first-mask"]["J&F-Mean"]
    print(f"overlay video: {overlay}")
    print(f"held-out J&F-Mean: FEELVOS ({train_config.model.variant}) {ours:.3f}, ", end="")
    print(f"copy-first-mask baseline {floor:.3f}")
    return scores
