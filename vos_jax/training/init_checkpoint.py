"""`model.init_checkpoint`: start a training run from existing weights instead of random ones.

Three kinds of folders are accepted:
- a converted backbone (`vos-jax convert resnet`, model.json family "backbone"): its variables go
  to the model's backbone, the subtree whose parameter names are the backbone's (FEELVOS
  `encoder`, RVOS `encoder/base`), found by structure so that no family has to declare it;
- a published vos-jax model (`families.save_model`, `vos-jax convert rvos`, a run's
  `models/step_<N>`): its params and BatchNorm statistics, all or those under `init_prefixes`;
- a train.py workdir: its last exported model (`models/step_<N>` with the largest N), which is how
  a second training stage starts from the first (RVOS's two-stage YouTube-VOS recipe).
Every loaded variable must exist in the model with the same shape; what was loaded and what kept
its initialisation is logged. Only a fresh run is initialised: a resumed run keeps its checkpoint.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import flax
import jax
import numpy as np

from vos_jax.io.published import read_model

KEY = "config.model.init_checkpoint"


class InitCheckpointError(ValueError):
    """An init checkpoint that cannot initialise this model (names the path and variable)."""


def resolve(path: str | os.PathLike) -> Path:
    """The model folder `path` names: itself (model.json) or a workdir's last exported model."""
    path = Path(path).expanduser().absolute()
    if (path / "model.json").is_file():
        return path
    steps = [
        (int(m.group(1)), p)
        for p in (path / "models").glob("step_*")
        if (m := re.fullmatch(r"step_(\d+)", p.name)) and (p / "model.json").is_file()
    ]
    if not steps:
        raise InitCheckpointError(
            f"{KEY}: {path} is neither a vos-jax model folder (model.json) nor a train.py workdir "
            "with exported models (models/step_<N>/)"
        )
    return max(steps)[1]


def _flat(tree) -> dict[str, Any]:
    return flax.traverse_util.flatten_dict(flax.core.unfreeze(tree or {}), sep="/")


def _backbone_prefix(params: dict, backbone: dict, path: Path) -> str:
    """The path ("encoder/base/") of the subtree of `params` with exactly `backbone`'s names."""
    want = set(backbone)
    queue = [("", params)]
    while queue:
        prefix, tree = queue.pop(0)
        if set(tree) == want:
            return prefix
        queue += [(f"{prefix}{k}/", v) for k, v in tree.items() if isinstance(v, dict)]
    raise InitCheckpointError(
        f"{KEY}: the backbone in {path} ({', '.join(sorted(want)[:4])}, ...) matches no subtree "
        "of this model's parameters (another architecture or depth?)"
    )


def _selected(name: str, prefixes: tuple[str, ...]) -> bool:
    return not prefixes or any(name == p or name.startswith(p.rstrip("/") + "/") for p in prefixes)


def load(path: str | os.PathLike, params, batch_stats, prefixes: str = ""):
    """The checkpoint's variables for a model whose initial `params` / `batch_stats` (arrays or
    shape structs) are given: -> ({param path: host array}, {batch_stats path: host array}),
    checked against the model's names and shapes. `prefixes`: comma-separated parameter paths
    to take (empty: all)."""
    folder = resolve(path)
    meta, variables = read_model(folder)
    wanted = tuple(p.strip() for p in prefixes.split(",") if p.strip())
    source_params, source_stats = variables.get("params", {}), variables.get("batch_stats", {})
    graft = ""
    if meta.get("family") == "backbone":
        graft = _backbone_prefix(flax.core.unfreeze(params), source_params, folder)
    out = []
    for collection, target, source in (
        ("params", params, source_params),
        ("batch_stats", batch_stats, source_stats),
    ):
        flat_target = _flat(target)
        loaded = {
            graft + name: np.asarray(value)
            for name, value in _flat(source).items()
            if _selected(graft + name, wanted)
        }
        for name, value in loaded.items():
            if name not in flat_target:
                raise InitCheckpointError(
                    f"{KEY}: {folder} has {collection} {name!r}, the model not"
                )
            if tuple(value.shape) != tuple(np.shape(flat_target[name])):
                raise InitCheckpointError(
                    f"{KEY}: {collection} {name!r} is {value.shape} in {folder}, "
                    f"{tuple(np.shape(flat_target[name]))} in the model"
                )
        if collection == "params":
            if not loaded:
                raise InitCheckpointError(f"{KEY}: no params of {folder} under {prefixes!r}")
            kept = sorted(set(flat_target) - set(loaded))
            logging.warning(
                "%s: loaded %d of %d params from %s; initialised: %s",
                KEY,
                len(loaded),
                len(flat_target),
                folder,
                _summary(kept),
            )
        out.append(loaded)
    return out[0], out[1]


def graft(tree, loaded: dict[str, np.ndarray]):
    """`tree` (arrays, possibly sharded) with the `loaded` leaves put in their place, each with
    the dtype and sharding of the leaf it replaces."""
    flat = _flat(tree)
    for name, value in loaded.items():
        leaf = flat[name]
        flat[name] = jax.device_put(value.astype(leaf.dtype), leaf.sharding)
    return flax.traverse_util.unflatten_dict(flat, sep="/")


def _summary(names: list[str]) -> str:
    """Top-level groups of parameter names, e.g. 'head (12), decoder (40)'; 'none' if empty."""
    groups: dict[str, int] = {}
    for name in names:
        top = name.split("/")[0]
        groups[top] = groups.get(top, 0) + 1
    return ", ".join(f"{k} ({v})" for k, v in groups.items()) or "none"
