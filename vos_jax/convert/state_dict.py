"""Moving PyTorch state-dict entries into Flax variables, with an account of every entry.

A state dict here is a mapping of PyTorch names to NumPy arrays, as
`{k: v.numpy() for k, v in torch.load(f, weights_only=True).items()}` gives it (`read_state_dict`
reads one from a PyTorch or `.npz` file). `Importer` takes entries by name, converts the layout
(conv OIHW -> HWIO, BatchNorm weight/bias/running stats -> scale/bias + batch_stats mean/var) and,
at the end, fails loudly if an entry was not used or a variable of the model was not set, or a
shape differs (naming the entry).
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import flax
import jax
import numpy as np


class StateDictMismatch(ValueError):
    """A state dict does not fit the model (missing, unused or mis-shaped entries)."""


class Importer:
    """Collects flat Flax variables {(collection, *path): array} from a state dict."""

    def __init__(self, state_dict: Mapping[str, np.ndarray], ignore: Iterable[str] = ()):
        self.entries = {k: np.asarray(v) for k, v in state_dict.items()}
        self.used: set[str] = set()
        self.flat: dict[tuple[str, ...], np.ndarray] = {}
        self.source: dict[tuple[str, ...], str] = {}  # variable -> its entry, for error messages
        for name in ignore:  # documented non-model entries (classifier heads, counters)
            if name in self.entries:
                self.used.add(name)

    def take(self, name: str) -> np.ndarray:
        if name not in self.entries:
            raise StateDictMismatch(f"state dict: missing entry {name!r}")
        self.used.add(name)
        return self.entries[name]

    def has(self, name: str) -> bool:
        return name in self.entries

    def set(self, key: tuple[str, ...], name: str, value: np.ndarray | None = None) -> None:
        """Variable `key` (collection, *path) from entry `name`, or from `value` derived from it."""
        self.flat[key] = self.take(name) if value is None else value
        self.source[key] = name

    def conv(self, torch_name: str, path: tuple[str, ...], bias: bool = True) -> None:
        """nn.Conv2d [O, I, kh, kw] (+ bias) -> nn.Conv kernel [kh, kw, I, O] (+ bias)."""
        weight = self.take(f"{torch_name}.weight")
        kernel = np.transpose(weight, (2, 3, 1, 0))
        self.set(("params", *path, "kernel"), f"{torch_name}.weight", kernel)
        if bias:
            self.set(("params", *path, "bias"), f"{torch_name}.bias")

    def batch_norm(self, torch_name: str, path: tuple[str, ...]) -> None:
        """nn.BatchNorm2d -> flax BatchNorm: weight -> scale, bias, running stats -> batch_stats."""
        self.set(("params", *path, "scale"), f"{torch_name}.weight")
        self.set(("params", *path, "bias"), f"{torch_name}.bias")
        self.set(("batch_stats", *path, "mean"), f"{torch_name}.running_mean")
        self.set(("batch_stats", *path, "var"), f"{torch_name}.running_var")
        if self.has(f"{torch_name}.num_batches_tracked"):  # a counter; no effect in eval mode
            self.take(f"{torch_name}.num_batches_tracked")

    def finish(self, expected) -> dict:
        """-> variables shaped as `expected` (e.g. `jax.eval_shape(model.init, ...)`); raises if an
        entry is unused, a variable is unset or a shape differs."""
        unused = sorted(set(self.entries) - self.used)
        if unused:
            raise StateDictMismatch(f"state dict: {len(unused)} unused entries, e.g. {unused[:5]}")
        want = flax.traverse_util.flatten_dict(flax.core.unfreeze(expected))
        unset = sorted("/".join(k) for k in set(want) - set(self.flat))
        if unset:
            raise StateDictMismatch(f"model: {len(unset)} variables not set, e.g. {unset[:5]}")
        extra = sorted("/".join(k) for k in set(self.flat) - set(want))
        if extra:
            raise StateDictMismatch(f"state dict maps to unknown variables, e.g. {extra[:5]}")
        out = {}
        for key, spec in want.items():
            value = self.flat[key]
            if tuple(value.shape) != tuple(spec.shape):
                raise StateDictMismatch(
                    f"{'/'.join(key)} (entry {self.source[key]!r}): state dict shape "
                    f"{value.shape} (in the model's layout), model {tuple(spec.shape)}"
                )
            if np.issubdtype(value.dtype, np.inexact) and not np.isfinite(value).all():
                bad = int(np.size(value) - np.isfinite(value).sum())
                raise StateDictMismatch(
                    f"{'/'.join(key)} (entry {self.source[key]!r}): {bad} NaN or Inf values; "
                    "expected finite weights (a diverged or damaged checkpoint)"
                )
            out[key] = jax.numpy.asarray(value, spec.dtype)
        return flax.traverse_util.unflatten_dict(out)


def torchvision_resnet(
    importer: Importer, prefix: str, path: tuple[str, ...], stages, bottleneck: bool
) -> None:
    """A torchvision ResNet (`conv1`, `bn1`, `layer{s}.{b}.conv{i}/bn{i}`, `downsample.0/1`) into
    `backbones.ResNet` (`conv1`, `bn1`, `layer{s}_{b}/conv{i}/bn{i}`, `downsample_conv/bn`).
    `stages`: blocks per stage; `bottleneck`: 3 convs a block, else 2 (BasicBlock). The
    classifier (`fc`) is not part of a backbone: the caller ignores it."""
    importer.conv(f"{prefix}conv1", (*path, "conv1"), bias=False)
    importer.batch_norm(f"{prefix}bn1", (*path, "bn1"))
    convs = (1, 2, 3) if bottleneck else (1, 2)
    for s, blocks in enumerate(stages, start=1):
        for b in range(blocks):
            torch_block, block = f"{prefix}layer{s}.{b}", (*path, f"layer{s}_{b}")
            for i in convs:
                importer.conv(f"{torch_block}.conv{i}", (*block, f"conv{i}"), bias=False)
                importer.batch_norm(f"{torch_block}.bn{i}", (*block, f"bn{i}"))
            # Block 0 of a stage that changes stride or width; the model's variables say which
            # (an absent or extra downsample is reported by `finish`, a partial one by `take`).
            if any(k.startswith(f"{torch_block}.downsample.") for k in importer.entries):
                importer.conv(
                    f"{torch_block}.downsample.0", (*block, "downsample_conv"), bias=False
                )
                importer.batch_norm(f"{torch_block}.downsample.1", (*block, "downsample_bn"))


def blocks_per_stage(state_dict: Mapping[str, np.ndarray], prefix: str) -> tuple[int, ...]:
    """Blocks of each of the 4 stages of a torchvision ResNet in `state_dict` under `prefix`."""
    counts = []
    for s in (1, 2, 3, 4):
        head = f"{prefix}layer{s}."
        ids = {int(k[len(head) :].split(".")[0]) for k in state_dict if k.startswith(head)}
        counts.append(len(ids))
    return tuple(counts)


def strip_prefix(state_dict: Mapping[str, np.ndarray], prefix: str = "") -> dict[str, np.ndarray]:
    """Entries under `prefix` with it removed, and without DataParallel's `module.` (a model
    saved from `nn.DataParallel` has every name under it)."""
    out = {}
    for name, value in state_dict.items():
        if not name.startswith(prefix):
            continue
        name = name[len(prefix) :]
        out[name.removeprefix("module.")] = np.asarray(value)
    return out


_HOLDS_CODE = (
    "{path}: holds code ({what}), not only weights; refused: vos-jax reads tensors only and "
    "never runs a file's code (ask its publisher for a plain state dict or .npz)"
)
_DAMAGED = (
    "{path}: cannot read as a PyTorch state dict (truncated or damaged: torch.load found no "
    "complete archive of tensors); download it again"
)


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A state dict file as {name: array}: `.npz` (NumPy, no torch needed) or a PyTorch file
    (`torch.load(weights_only=True)`, the `[torch]` extra: tensors only, never a pickle that
    could run code); a training checkpoint's `state_dict` entry is the state dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such state-dict file")
    if path.suffix == ".npz":
        if not zipfile.is_zipfile(path):  # else np.load would take it for a pickle
            raise StateDictMismatch(
                f"{path}: cannot read as .npz (truncated or damaged: not a complete zip archive)"
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except ValueError as err:
            if "allow_pickle" in str(err):  # object arrays: pickles, which can run code
                what = "pickled objects"
                raise StateDictMismatch(_HOLDS_CODE.format(path=path, what=what)) from None
            raise StateDictMismatch(f"{path}: cannot read as .npz ({err})") from None
        except (OSError, EOFError, zipfile.BadZipFile) as err:
            raise StateDictMismatch(
                f"{path}: cannot read as .npz (truncated or damaged: {err})"
            ) from None
    try:
        import torch
    except ImportError:
        raise ValueError(
            f"{path}: reading PyTorch files needs torch: pip install 'vos-jax[torch]' "
            "(or convert the state dict to .npz)"
        ) from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message advises weights_only=False (running the file's code): never repeated.
        found = re.search(r"GLOBAL\s+([\w.]+)", str(err))
        if found or "Unsupported" in str(err):
            what = f"a pickled reference to {found.group(1)}" if found else "pickled objects"
            raise StateDictMismatch(_HOLDS_CODE.format(path=path, what=what)) from None
        raise StateDictMismatch(_DAMAGED.format(path=path)) from None
    except Exception:  # whatever a damaged file makes the reader raise
        raise StateDictMismatch(_DAMAGED.format(path=path)) from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]  # a training checkpoint {"epoch", "state_dict", ...}
    if not isinstance(loaded, Mapping):
        raise StateDictMismatch(f"{path}: expected a state dict (name -> tensor)")
    return {k: v.detach().cpu().numpy() for k, v in loaded.items()}
