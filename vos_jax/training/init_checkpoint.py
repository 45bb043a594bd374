"""`model.init_checkpoint`: start a training run from existing weights instead of random ones.

Three kinds of folders are accepted:
- a converted backbone (`vos-jax convert resnet`, model.json family "backbone"): its variables go
  to the model's backbone, the subtree whose parameter names are the backbone's (e.g. `encoder`
  or `encoder/base`), found by structure so that no family has to declare it;
- a published vos-jax model (`families.save_model`, `vos-jax convert NAME`, a run's
  `models/step_<N>`): its params and BatchNorm statistics, all or those under `init_prefixes`;
- a train.py workdir: its last exported model (`models/step_<N>` with the largest N), which is how
  a second training stage starts from the first.
Every loaded variable must exist in the model with the same shape; what was loaded and what kept
its initialisation is logged. Only a fresh run is initialised: a resumed run keeps its checkpoint.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
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
    """The path ("encoder/base/") of the subtree of `params` with exactly `backbone`'s names,
    else of one with the backbone's stem (`conv1`) and a subset of its names (a truncated
    backbone, e.g. a ResNet without layer4)."""
    want = set(backbone)
    subsets, queue = [], [("", params)]
    while queue:
        prefix, tree = queue.pop(0)
        if set(tree) == want:
            return prefix
        if "conv1" in tree and set(tree) <= want:
            subsets.append(prefix)
        queue += [(f"{prefix}{k}/", v) for k, v in tree.items() if isinstance(v, dict)]
    if subsets:
        return subsets[0]
    raise InitCheckpointError(
        f"{KEY}: the backbone in {path} ({', '.join(sorted(want)[:4])}, ...) matches no subtree "
        "of this model's parameters (another architecture or depth?)"
    )


def _selected(name: str, prefixes: tuple[str, ...]) -> bool:
    return not prefixes or any(name == p or name.startswith(p.rstrip("/") + "/") for p in prefixes)


def _pointwise_into(source: tuple, target: tuple) -> bool:
    """A 1x1 conv kernel [1, 1, I, O] and an odd kxk kernel [k, k, I, O]."""
    return (
        len(source) == len(target) == 4
        and source[:2] == (1, 1)
        and target[0] == target[1] > 1
        and target[0] % 2 == 1
        and source[2:] == target[2:]
    )


def load(path: str | os.PathLike, params, batch_stats, prefixes: str = ""):
    """The checkpoint's variables for a model whose initial `params` / `batch_stats` (arrays or
    shape structs) are given: -> ({param path: host array}, {batch_stats path: host array}),
    checked against the model's names and shapes. `prefixes`: comma-separated parameter paths
    to take (empty: all)."""
    folder = resolve(path)
    meta, variables = read_model(folder)
    wanted = tuple(p.strip() for p in prefixes.split(",") if p.strip())
    source_params = variables.get("params", {})
    graft = ""
    if meta.get("family") == "backbone":
        graft = _backbone_prefix(flax.core.unfreeze(params), source_params, folder)

    def take(collection: str, target, source) -> dict[str, np.ndarray]:
        flat_target = _flat(target)
        loaded = {
            graft + name: np.asarray(value)
            for name, value in _flat(source).items()
            if _selected(graft + name, wanted)
        }
        if graft:  # a backbone: the parts a truncated one lacks (layer4) stay out
            missing = sorted({n.split("/")[len(graft.split("/")) - 1] for n in loaded
                              if n not in flat_target})  # fmt: skip
            if missing:
                logging.warning("%s: %s not in this model, not loaded: %s", KEY, collection,
                                ", ".join(missing))  # fmt: skip
            loaded = {n: v for n, v in loaded.items() if n in flat_target}
        for name, value in loaded.items():
            if name not in flat_target:
                raise InitCheckpointError(
                    f"{KEY}: {folder} has {collection} {name!r}, the model not"
                )
            shape = tuple(np.shape(flat_target[name]))
            if graft and _pointwise_into(value.shape, shape):
                # A 1x1 kernel starts a kxk one at its centre (zeros around), the same map where
                # the kxk conv is padded to keep the grid (3x3 shortcut convolutions).
                k = shape[0]
                centred = np.zeros(shape, value.dtype)
                centred[k // 2, k // 2] = value[0, 0]
                loaded[name] = centred
                continue
            if tuple(value.shape) != shape:
                raise InitCheckpointError(
                    f"{KEY}: {collection} {name!r} is {value.shape} in {folder}, "
                    f"{tuple(np.shape(flat_target[name]))} in the model"
                )
        return loaded

    loaded_params = take("params", params, source_params)
    if not loaded_params:
        raise InitCheckpointError(f"{KEY}: no params of {folder} under {prefixes!r}")
    kept = Counter(name.split("/")[0] for name in _flat(params) if name not in loaded_params)
    logging.warning(
        "%s: loaded %d of %d params from %s; initialised: %s",
        KEY,
        len(loaded_params),
        len(loaded_params) + kept.total(),
        folder,
        ", ".join(f"{k} ({v})" for k, v in kept.items()) or "none",
    )
    return loaded_params, take("batch_stats", batch_stats, variables.get("batch_stats", {}))


def graft(tree, loaded: dict[str, np.ndarray]):
    """`tree` (arrays, possibly sharded) with the `loaded` leaves put in their place, each with
    the dtype and sharding of the leaf it replaces."""
    flat = _flat(tree)
    for name, value in loaded.items():
        leaf = flat[name]
        flat[name] = jax.device_put(value.astype(leaf.dtype), leaf.sharding)
    return flax.traverse_util.unflatten_dict(flat, sep="/")
