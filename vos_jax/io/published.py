"""Published checkpoints: variables + model config + metrics + model card, loadable in one call
with no training code.

Layout of a checkpoint folder:
    model.json     {"family", "variant", "kwargs", "metrics", "created"}
    README.md      the model card (free text: data, training, results, licence)
    variables/     the Flax variables (params, batch_stats) as an orbax checkpoint
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from vos_jax.families import build_model


def save_model(
    path: str | os.PathLike,
    family: str,
    variant: str,
    variables,
    kwargs: dict | None = None,
    metrics: dict | None = None,
    card: str = "",
) -> Path:
    """Write a checkpoint folder; refuses to replace an existing one (never lose a checkpoint)."""
    path = Path(path).expanduser().absolute()  # orbax wants absolute paths
    if path.exists():
        raise FileExistsError(f"{path}: already exists; choose a new checkpoint folder")
    _, used = build_model(family, variant, **(kwargs or {}))  # validates before writing
    path.mkdir(parents=True)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(path / "variables", variables)
    checkpointer.wait_until_finished()
    meta = {
        "family": family,
        "variant": variant,
        "kwargs": {k: (jnp.dtype(v).name if k == "dtype" else v) for k, v in used.items()},
        "metrics": metrics or {},
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    (path / "model.json").write_text(json.dumps(meta, indent=1) + "\n")
    (path / "README.md").write_text(card or f"# {family} ({variant})\n")
    return path


def load_model(path: str | os.PathLike):
    """-> (model, variables, meta) of a checkpoint folder written by `save_model`."""
    path = Path(path).expanduser().absolute()
    meta_file = path / "model.json"
    if not meta_file.is_file():
        raise FileNotFoundError(
            f"{path}: not a vos-jax checkpoint (expected model.json, README.md and variables/)"
        )
    meta = json.loads(meta_file.read_text())
    kwargs = {k: (jnp.dtype(v) if k == "dtype" else v) for k, v in meta["kwargs"].items()}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()}  # JSON lists
    model, _ = build_model(meta["family"], meta["variant"], **kwargs)
    checkpointer = ocp.StandardCheckpointer()
    variables = checkpointer.restore(path / "variables")
    variables = jax.tree.map(jnp.asarray, variables)
    return model, variables, meta
