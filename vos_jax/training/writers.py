"""Where training metrics go: `workdir/metrics.jsonl` (one JSON object per logged step) and
TensorBoard event files in `workdir/tensorboard/` (tensorboardX: no TensorFlow needed).

On a resumed run, records after the restored step describe work that is being redone: they are
dropped from metrics.jsonl (kept in `metrics.jsonl.replaced`) and TensorBoard purges them, so both
show one trail.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import jax


def _json_value(value):
    value = float(value)
    return value if math.isfinite(value) else str(value)  # JSON has no NaN/inf


class MetricWriter:
    """Writes on process 0 only (every host computes the same replicated metrics)."""

    def __init__(self, workdir: str | os.PathLike, start_step: int):
        self.active = jax.process_index() == 0
        self.path = Path(workdir) / "metrics.jsonl"
        self.tensorboard = None
        if not self.active:
            return
        self._truncate(start_step)
        from tensorboardX import SummaryWriter

        self.tensorboard = SummaryWriter(str(Path(workdir) / "tensorboard"), purge_step=start_step)

    def _truncate(self, start_step: int) -> None:
        if not self.path.exists():
            return
        keep, replaced = [], []
        for line, record in _records(self.path):
            (keep if record["step"] <= start_step else replaced).append(line)
        if replaced:
            with open(self.path.with_name("metrics.jsonl.replaced"), "a") as f:
                f.write("\n".join(replaced) + "\n")
        self.path.write_text("".join(line + "\n" for line in keep))

    def write(self, step: int, metrics: dict) -> None:
        if not self.active:
            return
        record = {"step": int(step), **{k: _json_value(v) for k, v in metrics.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        for key, value in metrics.items():
            self.tensorboard.add_scalar(key, float(value), int(step))
        self.tensorboard.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def _records(path: Path) -> list[tuple[str, dict]]:
    """(line, record) of every line of a metrics log. A torn last line (a run killed while
    writing it) is dropped with a warning: its step is redone; a bad line elsewhere is an error
    naming the file and the line."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    out = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise ValueError("no integer 'step'")
        except ValueError as err:
            if number == len(lines):
                logging.warning("%s: dropped a torn last line %r (%s)", path, line[:80], err)
                break
            raise ValueError(f"{path}: line {number} is not a metrics record ({err})") from None
        out.append((line, record))
    return out


def read_metrics(workdir: str | os.PathLike) -> list[dict]:
    """The records of `workdir/metrics.jsonl`, in order (a torn last line left out)."""
    return [record for _, record in _records(Path(workdir) / "metrics.jsonl")]
