"""Tables and files of an evaluation, in the official toolkit's format.

`global_results-<set>.csv` and `per-sequence_results-<set>.csv` have the toolkit's columns and its
number format (three decimals); `results-<set>.json` adds every per-object statistic and the
per-frame values. Aggregates are plain means over all objects of all sequences (SPEC section 5).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from vos_jax.metrics.evaluation import EvaluationInputError, ObjectScores

_STATS = {"Mean": "M", "Recall": "R", "Decay": "D"}


def output_paths(output_dir: str | os.PathLike, subset: str) -> list[Path]:
    out = Path(output_dir)
    return [
        out / f"global_results-{subset}.csv",
        out / f"per-sequence_results-{subset}.csv",
        out / f"results-{subset}.json",
    ]


def refuse_existing(output_dir: str | os.PathLike, subset: str, overwrite: bool) -> None:
    """Raise EvaluationInputError if an output of an evaluation exists and may not be replaced."""
    existing = [p for p in output_paths(output_dir, subset) if p.exists()]
    if existing and not overwrite:
        raise EvaluationInputError(
            f"{existing[0]}: already exists; pass --overwrite to replace it or --output DIR"
        )


def check_output_dir(
    output_dir: str | os.PathLike,
    davis_root: str | os.PathLike,
    flag: str = "--output",
    writes: str = "the evaluation's CSV/JSON",
) -> None:
    """Raise EvaluationInputError, before anything is evaluated, if the outputs could not be
    written to `output_dir` (a file there or above it, a folder without write permission) or it
    lies inside the DAVIS root (an evaluation never writes into the dataset). `flag` names the
    argument it came from (--results when --output defaults to it), `writes` what would go there."""
    out = Path(output_dir)
    resolved, root = out.resolve(), Path(davis_root).resolve()
    if resolved == root or root in resolved.parents:
        fix = "--output" if writes.endswith("CSV/JSON") else flag
        raise EvaluationInputError(
            f"{flag} {out}: inside the DAVIS root {davis_root}, where {writes} would be "
            f"written; pass {fix} DIR outside the dataset"
        )
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == out else f"lies under the file {existing}"
        raise EvaluationInputError(f"{flag} {out}: {what}; expected a folder for {writes}")
    try:
        tempfile.TemporaryFile(dir=existing).close()  # the real test (root ignores mode bits)
    except OSError as err:
        raise EvaluationInputError(
            f"{flag} {out}: cannot write in {existing} ({err.strerror or err}); expected a "
            f"writable folder for {writes}"
        ) from None


def _mean(values: list[float]) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return float(np.nanmean(values)) if values else math.nan


def global_table(objects: list[ObjectScores], metrics) -> dict[str, float]:
    """The global row: J&F-Mean, then mean / recall / decay of J and F (means over objects), and
    T-Mean when T was computed (a NaN-ignoring mean: T is undefined for empty masks)."""
    row = {}
    for name in ("J", "F"):
        if name in metrics:
            for label, key in _STATS.items():
                row[f"{name}-{label}"] = float(np.mean([o.stats[name + key] for o in objects]))
    if "J" in metrics and "F" in metrics:
        row = {"J&F-Mean": (row["J-Mean"] + row["F-Mean"]) / 2, **row}
    if "T" in metrics:
        row["T-Mean"] = _mean([o.stats["TM"] for o in objects])
    return row


def per_object_table(objects: list[ObjectScores], metrics) -> list[dict[str, object]]:
    rows = []
    for obj in objects:
        row: dict[str, object] = {"Sequence": obj.name}
        for name in ("J", "F", "T"):
            if name in metrics:
                row[f"{name}-Mean"] = obj.stats[f"{name}M"]
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, object]]) -> str:
    """Right-aligned text table (six decimals, like pandas' `to_string`)."""
    if not rows:
        return "(no objects)"
    columns = list(rows[0])
    cells = [[f"{v:.6f}" if isinstance(v, float) else str(v) for v in r.values()] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = [" ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += [" ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _csv_text(rows: list[dict[str, object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(rows[0]) if rows else ["Sequence"])
    for row in rows:
        writer.writerow([f"{v:.3f}" if isinstance(v, float) else v for v in row.values()])
    return buffer.getvalue()


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_outputs(output_dir, subset: str, objects, metrics, about: dict) -> list[Path]:
    """Write the three result files, each through a temporary file and an atomic rename, so an
    interrupted run never leaves a half-written CSV in place of a good one."""
    global_row = global_table(objects, metrics)
    report = {
        **about,
        "metrics": list(metrics),
        "global": global_row,
        "per_object": {o.name: {**o.stats, "per_frame": o.per_frame} for o in objects},
    }
    texts = [
        _csv_text([global_row]),
        _csv_text(per_object_table(objects, metrics)),
        json.dumps(_json_safe(report), indent=1) + "\n",
    ]
    paths = output_paths(output_dir, subset)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    for path, text in zip(paths, texts, strict=True):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return paths
