"""Load a config file: a Python file with `get_config(arg=None) -> ml_collections.ConfigDict`,
named as `path.py` or `path.py:arg` (the convention of ml_collections' config_flags, which
train.py uses through absl; this loader serves the argparse commands). A name that is not a
file is looked up among the configs shipped in the package (`vos_jax/configs/`), so
`feelvos_synthetic.py:runlocal` works from any folder after a plain `pip install`."""

from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path


def resolve(path: str) -> Path:
    """A config file's path: `path` itself if it is a file, else the packaged config of that
    file name."""
    if Path(path).is_file():
        return Path(path)
    packaged = importlib.resources.files("vos_jax.configs") / Path(path).name
    if Path(path).suffix == ".py" and packaged.is_file():
        return Path(str(packaged))
    names = sorted(p.name for p in importlib.resources.files("vos_jax.configs").iterdir())
    shipped = ", ".join(n for n in names if n.endswith(".py") and not n.startswith("_"))
    raise FileNotFoundError(
        f"{path}: config file not found (a .py with get_config, or a shipped one: {shipped})"
    )


def load_config(spec: str):
    """`feelvos_davis17.py:runlocal` -> the ConfigDict its get_config("runlocal") builds."""
    path, _, arg = spec.partition(":")
    path = resolve(path)
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"{path}: defines no get_config(arg=None)")
    return module.get_config(arg or None)
