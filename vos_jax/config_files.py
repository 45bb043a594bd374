"""Load a config file: a Python file with `get_config(arg=None) -> ml_collections.ConfigDict`,
named as `path.py` or `path.py:arg` (the convention of ml_collections' config_flags, which
train.py uses through absl; this loader serves the argparse commands)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def load_config(spec: str):
    """`configs/feelvos_davis17.py:runlocal` -> the ConfigDict its get_config("runlocal") builds."""
    path, _, arg = spec.partition(":")
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: config file not found (expected a .py with get_config)")
    module_spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"{path}: defines no get_config(arg=None)")
    return module.get_config(arg or None)
