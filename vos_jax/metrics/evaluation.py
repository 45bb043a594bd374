"""Evaluate a results folder against a DAVIS ground-truth folder, as the official toolkit does.

Folder conventions of davis2017-evaluation: the ground truth and sequence lists of a DAVIS folder
(`vos_jax.io.layouts.DavisLayout`), results in `<results>/<seq>/<frame>.png` (palette PNGs named
like the ground truth). Frames are not needed. Every input is checked before anything
is computed, and sequences are evaluated in parallel worker processes.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vos_jax.io.layouts import DavisLayout, LayoutError
from vos_jax.io.masks import MaskFileError, read_mask_and_mode
from vos_jax.metrics import davis
from vos_jax.metrics.temporal import t_mean, temporal_stability

TASKS = ("semi-supervised", "unsupervised")
METRICS = ("J", "F", "T")


class EvaluationInputError(ValueError):
    """Bad evaluation input; the message names the file or argument and what was expected."""


@dataclass
class ObjectScores:
    """One ground-truth object's per-frame values and statistics (keys JM JR JD FM FR FD TM)."""

    name: str
    per_frame: dict[str, list[float]] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)


def list_sequences(
    davis_root: Path, task: str, subset: str, resolution: str, sequences: list[str] | None
) -> list[str]:
    """The sequences to evaluate: `sequences` if given, else the ImageSets/2017/<set>.txt list."""
    layout = DavisLayout(Path(davis_root), resolution)
    gt_dir = layout.annotations_root(task)
    if not gt_dir.is_dir():
        raise EvaluationInputError(
            f"{gt_dir}: ground-truth folder not found (expected <seq>/*.png)"
        )
    if not sequences:
        try:
            sequences = layout.sequences(subset)
        except LayoutError as err:
            raise EvaluationInputError(str(err)) from None
    for seq in sequences:
        if not layout.mask_paths(seq, task):
            raise EvaluationInputError(
                f"{layout.annotations_dir(seq, task)}: unknown sequence '{seq}' "
                "(no ground-truth PNGs there)"
            )
    return list(sequences)


def _read_stack(paths: list[Path], binary_2016: bool = False, shape=None) -> np.ndarray:
    """[T, H, W] pixel values as the official toolkit reads them (`np.array(Image.open(path))`):
    in a palette ('P') or grayscale ('L') PNG the value is the object id (255: void).
    `binary_2016`: a sequence whose masks are all grayscale holding only 0 and 255 is DAVIS 2016's
    ground truth (one object), so 255 becomes object 1."""
    if not paths:
        return np.zeros((0, *shape), np.uint8)
    masks, modes = [], set()
    for path in paths:
        try:
            mask, mode = read_mask_and_mode(path)
        except MaskFileError as err:
            raise EvaluationInputError(str(err)) from None
        modes.add(mode)
        if shape is None:
            shape = mask.shape
        if mask.shape != shape:
            raise EvaluationInputError(
                f"{path}: mask size {mask.shape[1]}x{mask.shape[0]} differs from the ground "
                f"truth's {shape[1]}x{shape[0]} (WxH)"
            )
        masks.append(mask)
    stack = np.stack(masks)
    if binary_2016 and "L" in modes and modes <= {"L", "1"} and np.isin(stack, (0, 255)).all():
        return (stack > 0).astype(np.uint8)
    return stack  # ids as they are ('1' masks: 0/1)


def load_sequence(layout: DavisLayout, results_dir: Path, seq: str, task: str):
    """-> (gt ids [T, H, W], result ids [T', H, W] for the frames the protocol evaluates, and the
    paths of those result files)."""
    gt_paths = layout.mask_paths(seq, task)
    # DAVIS 2016 ground truth is grayscale 0/255 (one object); 2017 is palette ids.
    gt = _read_stack(gt_paths, binary_2016=True)
    result_paths = _result_paths(layout, results_dir, seq, task)
    for path in result_paths:
        if not path.is_file():
            raise EvaluationInputError(
                f"{path}: result mask not found (expected a palette PNG for every evaluated frame "
                f"of '{seq}', named like the ground truth)"
            )
    results = _read_stack(result_paths, shape=gt.shape[1:])
    return gt, results, result_paths


def _result_paths(layout: DavisLayout, results_dir: Path, seq: str, task: str) -> list[Path]:
    """The result files the protocol evaluates: semi-supervised drops the first and last frame."""
    gt_paths = layout.mask_paths(seq, task)
    frames = gt_paths[1:-1] if task == "semi-supervised" else gt_paths
    return [results_dir / seq / p.name for p in frames]


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()
    except OSError:
        return False  # a missing result is reported when its sequence is read


def refuse_ground_truth(layout: DavisLayout, results_dir: Path, seqs: list[str], task: str):
    """Raise EvaluationInputError if the results are the ground truth: its folder (after resolving
    links), or files byte-identical to the ground truth on every evaluated frame beyond the first
    of every sequence (semi-supervised results copy frame 0). Scoring them gives J&F = 1."""
    gt_dir = layout.annotations_root(task)
    if results_dir.resolve() == gt_dir.resolve():
        raise EvaluationInputError(
            f"--results {results_dir}: is the ground-truth folder {gt_dir}; expected a method's "
            "results (the ground truth scored against itself gives J&F = 1)"
        )
    compared = 0
    for seq in seqs:
        gt_paths = {p.name: p for p in layout.mask_paths(seq, task)[1:]}
        for path in _result_paths(layout, results_dir, seq, task):
            if path.name not in gt_paths:
                continue  # the first frame: results copy it
            if not _same_bytes(path, gt_paths[path.name]):
                return
            compared += 1
    if compared:
        raise EvaluationInputError(
            f"--results {results_dir}: every evaluated mask is byte-identical to the ground truth "
            f"in {gt_dir}; expected a method's results, not a copy of the ground truth"
        )


def evaluate_sequence(
    layout: DavisLayout, results_dir: Path, seq: str, task: str, metrics: tuple[str, ...]
) -> list[ObjectScores]:
    """All ground-truth objects of one sequence, named `<seq>_<k>` in the toolkit's order."""
    gt, results, result_paths = load_sequence(layout, results_dir, seq, task)
    try:
        if task == "semi-supervised":
            scores = davis.evaluate_semisupervised(gt, results)
        else:
            scores = davis.evaluate_unsupervised(gt, results, metrics)
    except davis.ProtocolError as err:
        raise EvaluationInputError(f"{result_paths[err.frame]}: {err}") from None
    objects = []
    for k, result_id in enumerate(scores.result_ids):
        obj = ObjectScores(name=f"{seq}_{k + 1}")
        for name, values in (("J", scores.j[k]), ("F", scores.f[k])):
            if name in metrics:
                obj.per_frame[name] = values.tolist()
                m, r, d = davis.statistics(values)
                obj.stats.update({f"{name}M": m, f"{name}R": r, f"{name}D": d})
        if "T" in metrics:
            # T compares consecutive predicted masks of the frames this protocol evaluates.
            t_values = temporal_stability(results == result_id, drop_first_last=False)
            obj.per_frame["T"] = t_values.tolist()
            obj.stats["TM"] = t_mean(t_values) if result_id > 0 else math.nan
        objects.append(obj)
    return objects


def _check_results_dir(results_dir: Path) -> None:
    if not results_dir.is_dir():
        raise EvaluationInputError(f"{results_dir}: results folder not found")
    if not any(results_dir.glob("*/*.png")):
        raise EvaluationInputError(
            f"{results_dir}: results folder is empty (expected <sequence>/<frame>.png palette PNGs)"
        )


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already


def evaluate(
    davis_root: str | os.PathLike,
    results: str | os.PathLike,
    task: str = "semi-supervised",
    subset: str = "val",
    resolution: str = "480p",
    sequences: list[str] | None = None,
    metrics: tuple[str, ...] = ("J", "F"),
    workers: int | None = None,
) -> list[ObjectScores]:
    """Per-object scores of every evaluated sequence, in sequence-list order."""
    if task not in TASKS:
        raise EvaluationInputError(f"--task: expected one of {TASKS}, got {task!r}")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise EvaluationInputError(f"--metrics: expected a subset of J,F,T, got {metrics!r}")
    if workers is not None and workers < 1:
        raise EvaluationInputError(f"--workers: expected an integer >= 1, got {workers}")
    results_dir = Path(results)
    _check_results_dir(results_dir)
    layout = DavisLayout(Path(davis_root), resolution)
    seqs = list_sequences(Path(davis_root), task, subset, resolution, sequences)
    refuse_ground_truth(layout, results_dir, seqs, task)
    workers = min(workers or os.cpu_count() or 1, len(seqs))
    args = [(layout, results_dir, seq, task, tuple(metrics)) for seq in seqs]
    if workers <= 1:
        per_seq = [evaluate_sequence(*a) for a in args]
    else:
        # forkserver: workers start clean even when the parent has JAX (threads) loaded.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])  # workers fork with this module imported
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
            # Longest sequences first, so that no worker is left with a long one at the end.
            order = sorted(args, key=lambda a: -len(layout.mask_paths(a[2], task)))
            scores = pool.map(evaluate_sequence, *zip(*order, strict=True))
            done = dict(zip(order, scores, strict=True))
            per_seq = [done[a] for a in args]
    return [obj for objects in per_seq for obj in objects]
