"""Published checkpoints: variables + model config + metrics + model card, readable in one call
with no training code (`families.load_model` builds the model from them).

Layout of a checkpoint folder:
    model.json     {"family", "variant", "kwargs", "metrics", "inference", "created"}
                   (inference: the options it was trained with; the CLIs' defaults for it)
    README.md      the model card (free text: data, training, results, licence)
    variables/     the Flax variables (params, batch_stats) as an orbax checkpoint
    SHA256SUMS     `sha256sum` lines of every other file; checked on every read (a corrupted or
                   missing file is named), so a bundle can be copied and published safely
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp


def _to_json(key: str, value):
    return np.dtype(value).name if key == "dtype" else value


def _from_json(key: str, value):
    if key == "dtype":
        import jax.numpy as jnp  # a dtype name -> the JAX dtype (bfloat16 is not NumPy's)

        return jnp.dtype(value)
    return tuple(value) if isinstance(value, list) else value  # JSON has no tuples


def save_model(
    path: str | os.PathLike,
    family: str,
    variant: str,
    variables,
    kwargs: dict | None = None,
    metrics: dict | None = None,
    card: str = "",
    inference: dict | None = None,
) -> Path:
    """Write a checkpoint folder; refuses to replace an existing one (never lose a checkpoint).
    `kwargs`: the model's constructor arguments beyond its variant's; `inference`: the family's
    inference options it was trained for (e.g. a portrait model's input size)."""
    path = Path(path).expanduser().absolute()  # orbax wants absolute paths
    if path.exists():
        raise FileExistsError(f"{path}: already exists; choose a new checkpoint folder")
    path.mkdir(parents=True)
    # Written by this process alone (host-local arrays; in a multi-host job only process 0 saves
    # the published model: orbax's default would wait for every process at a barrier).
    me = jax.process_index()
    only_me = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})
    checkpointer = ocp.StandardCheckpointer(multiprocessing_options=only_me)
    checkpointer.save(path / "variables", variables)
    checkpointer.wait_until_finished()
    meta = {
        "family": family,
        "variant": variant,
        "kwargs": {k: _to_json(k, v) for k, v in (kwargs or {}).items()},
        "metrics": metrics or {},
        "inference": inference or {},
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    (path / "model.json").write_text(json.dumps(meta, indent=1) + "\n")
    (path / "README.md").write_text(card or f"# {family} ({variant})\n")
    write_checksums(path)
    return path


SUMS = "SHA256SUMS"


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(path: str | os.PathLike) -> Path:
    """(Re)write `path/SHA256SUMS` over every file of the folder (after adding files to it)."""
    path = Path(path)
    files = sorted(f for f in path.rglob("*") if f.is_file() and f.name != SUMS)
    lines = [f"{_sha256(f)}  {f.relative_to(path).as_posix()}\n" for f in files]
    (path / SUMS).write_text("".join(lines))
    return path / SUMS


def verify_checksums(path: str | os.PathLike) -> None:
    """Raise ValueError naming the first file that is missing or differs from SHA256SUMS (a
    folder without SHA256SUMS, written before vos-jax kept them, is not checked)."""
    path = Path(path)
    sums = path / SUMS
    if not sums.is_file():
        return
    for line in sums.read_text().splitlines():
        expected, name = line.split("  ", 1)
        file = path / name
        if not file.is_file():
            raise ValueError(f"{file}: missing from the checkpoint ({SUMS} lists it)")
        if _sha256(file) != expected:
            raise ValueError(f"{file}: sha256 differs from {SUMS}: the file is corrupted")


def read_model(path: str | os.PathLike) -> tuple[dict, dict]:
    """-> (meta with constructor kwargs decoded, variables as host arrays) of a folder written
    by `save_model`."""
    path = Path(path).expanduser().absolute()
    meta_file = path / "model.json"
    if not meta_file.is_file():
        raise FileNotFoundError(
            f"{path}: not a vos-jax checkpoint (expected model.json, README.md and variables/)"
        )
    verify_checksums(path)
    meta = json.loads(meta_file.read_text())
    meta["kwargs"] = {k: _from_json(k, v) for k, v in meta["kwargs"].items()}
    variables = ocp.StandardCheckpointer().restore(path / "variables")
    return meta, variables
