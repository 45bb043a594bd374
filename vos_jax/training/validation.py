"""Validation during training: segment a DAVIS-layout split with the inference engine, then score
it with the DAVIS metrics (the same code paths as `eval.py --checkpoint`)."""

from __future__ import annotations

import os
from pathlib import Path

from vos_jax.inference.segment import segment_davis
from vos_jax.metrics import evaluation, report


def evaluate_model(
    family,
    model,
    variables,
    davis_root: str | os.PathLike,
    split: str,
    out_dir: str | os.PathLike,
    inference: dict,
    max_videos: int = 0,
) -> dict[str, float]:
    """J&F of `model` (of `family`, a families.Family) on `split` of `davis_root` (at most
    `max_videos` sequences; 0 = all), in the semi-supervised protocol, or the unsupervised one
    for a zero-shot model;
    predictions go to `out_dir/results`. -> the global row ({'J&F-Mean': ..., 'J-Mean': ...})."""
    propagator = family.propagator(model, variables, **inference)
    task = "unsupervised" if propagator.unsupervised else "semi-supervised"
    sequences = evaluation.list_sequences(Path(davis_root), task, split, "480p", None)
    sequences = sequences[:max_videos] if max_videos else sequences
    results = Path(out_dir) / "results"
    segment_davis(propagator, davis_root, sequences, results, overwrite=True)
    objects = evaluation.evaluate(davis_root, results, task, split, sequences=sequences)
    return report.global_table(objects, ("J", "F"))
