"""The quickstart demo: train the default model (the demo config) on freshly generated synthetic
videos, evaluate it on held-out ones as eval.py does, compare with the copy-first-mask baseline,
write an overlay video.

Everything goes under `out/`: `data/` (the videos), `train/` (the train.py workdir: metrics,
TensorBoard, checkpoints, `models/step_<N>`), `results/`, `eval/`, `overlay/`. Running it again
resumes (or reuses) the training and rewrites the evaluation.
"""

from __future__ import annotations

from pathlib import Path

from vos_jax import families
from vos_jax.config_files import load_config
from vos_jax.inference.segment import segment_davis
from vos_jax.io import layouts
from vos_jax.io.masks import read_mask, write_mask
from vos_jax.io.video import OverlayWriter
from vos_jax.metrics import evaluation, report
from vos_jax.training.data import synthetic_root
from vos_jax.training.loop import train

DEFAULT_CONFIG = "feelvos_synthetic.py"  # shipped in vos_jax/configs
BASELINE = "copy-first-mask"


def copy_first_mask(davis_root: Path, sequences: list[str], out_dir: Path) -> None:
    """Write the first ground-truth mask as the prediction of every frame (DAVIS results layout):
    the floor any VOS method must beat."""
    for seq in sequences:
        _, masks = layouts.read_davis_sequence(davis_root, seq)
        for t in range(len(masks)):
            write_mask(out_dir / seq / f"{t:05d}.png", masks[0])


def _evaluate(davis_root: Path, results: Path, output: Path, sequences: list[str]) -> dict:
    """eval.py's scores and files (`output/results-val.json`, ...) -> the global row."""
    objects = evaluation.evaluate(davis_root, results, sequences=sequences)
    about = {"task": "semi-supervised", "set": "val", "davis_root": str(davis_root)}
    report.write_outputs(output, "val", objects, ("J", "F"), about)
    return report.global_table(objects, ("J", "F"))


def _overlay(root: Path, seq: str, results: Path, path: Path) -> None:
    frames, _ = layouts.read_davis_sequence(root, seq)
    writer = OverlayWriter(path)
    for t, frame in enumerate(frames):
        writer.write(frame, read_mask(results / seq / f"{t:05d}.png"))
    writer.close()


def run(
    out: Path, config: str | None = None, steps: int | None = None, preset: str | None = None
) -> dict:
    """Train (`steps`: instead of the config's total, 0 = the untrained model), evaluate,
    compare, overlay; -> {family: global row, 'copy-first-mask': ...}. `preset`: the synthetic
    videos' motion ("davis" or "hard") instead of the config's."""
    out = Path(out).absolute()
    train_config = load_config(config or DEFAULT_CONFIG)
    if steps is not None:
        train_config.total_steps = steps
    if preset is not None:
        train_config.synthetic.preset = preset
    # The demo evaluates the final model itself (below); the trainer's validation would repeat it.
    train_config.eval_every_steps = 0
    train_config.synthetic.cache_dir = str(out / "data")
    root = synthetic_root(train_config.synthetic)
    sequences = layouts.DavisLayout(root).sequences("val")
    print(f"data: {root} ({len(sequences)} held-out val videos)")

    summary = train(train_config, out / "train")
    print(f"trained model: {summary['model']}")
    family, model, variables, _ = families.load_model(summary["model"])
    propagator = family.propagator(model, variables, **train_config.inference)
    name = train_config.model.family
    segment_davis(propagator, root, sequences, out / "results" / name, overwrite=True)
    scores = {name: _evaluate(root, out / "results" / name, out / "eval" / name, sequences)}
    baseline = out / "results" / BASELINE
    copy_first_mask(root, sequences, baseline)
    scores[BASELINE] = _evaluate(root, baseline, out / "eval" / BASELINE, sequences)

    overlay = out / "overlay" / f"{sequences[0]}.mp4"  # a held-out video with its predictions
    _overlay(root, sequences[0], out / "results" / name, overlay)
    ours, floor = scores[name]["J&F-Mean"], scores[BASELINE]["J&F-Mean"]
    print(f"overlay video: {overlay}")
    print(f"held-out J&F-Mean: {name} ({train_config.model.variant}) {ours:.3f}, ", end="")
    print(f"{BASELINE} baseline {floor:.3f}")
    return scores
