"""A training workdir's guards: one run at a time (a lock), the config each run started with,
and an earlier run moved aside (never deleted) when the user asks to start over.

The lock is an `fcntl.flock` on `workdir/.lock`, held for the life of the run: the kernel
releases it when the process dies, so the lock of a killed run (kill -9, out of memory) is
never stale; the file only records the holder's PID for the error message. Only process 0 of a
multi-host job takes it (all hosts share the workdir). flock needs a local filesystem or NFSv4.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from pathlib import Path

LOCK = ".lock"
CONFIG = "config.json"
# What a run writes (moved aside together by `move_previous_run`).
RUN_FILES = (
    "checkpoints",
    "corrupt_checkpoints",
    "metrics.jsonl",
    "metrics.jsonl.replaced",
    "tensorboard",
    "models",
    "eval",
    CONFIG,
)


class WorkdirError(ValueError):
    """The workdir cannot be used as asked (in use, or holding a run of another config)."""


class WorkdirLock:
    """Held while a run trains in `workdir`; a second run there refuses with the holder's PID."""

    def __init__(self, workdir: Path):
        self.path = Path(workdir) / LOCK
        self.file = None

    def __enter__(self) -> WorkdirLock:
        self.file = open(self.path, "a+")  # noqa: SIM115  (held until __exit__)
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "unknown"
            self.file.close()
            raise WorkdirError(
                f"--workdir {self.path.parent}: in use by another training run (PID {holder}); "
                "wait for it or choose another workdir"
            ) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"{os.getpid()}\n")
        self.file.flush()
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def config_dict(config) -> dict:
    """The config as plain JSON values (tuples become lists, as they read back)."""
    return json.loads(config.to_json_best_effort())


def record_config(workdir: Path, config) -> None:
    """Write the config this run starts with (`workdir/config.json`)."""
    path = Path(workdir) / CONFIG
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(config_dict(config), indent=1, sort_keys=True) + "\n")
    os.replace(temporary, path)  # never a half-written record


def config_changes(workdir: Path, config) -> list[str]:
    """'key: old -> new' for every config key that differs from the last run's record (none
    when there is no record)."""
    path = Path(workdir) / CONFIG
    if not path.exists():
        return []
    try:
        old = _flat(json.loads(path.read_text()))
    except ValueError:
        return [f"{path}: unreadable"]
    new = _flat(config_dict(config))
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k, "-") != new.get(k, "-"))
    return [f"{k}: {old.get(k, '(none)')!r} -> {new.get(k, '(none)')!r}" for k in keys]


def move_previous_run(workdir: Path) -> Path | None:
    """Move an earlier run's files to `workdir/previous_runs/<time>/` (a fresh start keeps
    them); -> where, or None when there was nothing to move."""
    present = [Path(workdir) / name for name in RUN_FILES if (Path(workdir) / name).exists()]
    if not present:
        return None
    target = Path(workdir) / "previous_runs" / time.strftime("%Y%m%d-%H%M%S")
    while target.exists():
        target = target.with_name(target.name + "+")
    target.mkdir(parents=True)
    for path in present:
        shutil.move(path, target / path.name)
    return target
