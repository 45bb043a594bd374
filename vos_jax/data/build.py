"""Build a TFDS dataset from its manual-download folder (backs `vos-jax build-dataset`).

The builders' package depends on `vos_jax.io`; vos_jax never imports it (the two packages would
import each other), so the build runs as its command in a child process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_BUILDERS = "tfds_builders"  # run as `python -m`, never imported
_ERROR = "error: "  # the command's one-line error on bad input (exit code 2)


def build_dataset(
    name: str, config: str, manual_dir: str | os.PathLike, data_dir: str | os.PathLike
) -> list[str]:
    """Prepare `name/config` (e.g. davis_vos/2017_480p) under `data_dir`; return its split names.

    Reads the official files in `manual_dir`; downloads nothing. A dataset already prepared there
    is left as is; read it with `vos_jax.data.sources.TfdsVideoSource`. Bad input raises
    ValueError with the command's one-line error (naming the file and what was expected).
    """
    manual, data = (os.fspath(Path(p).expanduser().absolute()) for p in (manual_dir, data_dir))
    command = [sys.executable, "-m", _BUILDERS, "build", name, "--config", config]
    command += ["--manual_dir", manual, "--data_dir", data]
    # Output captured: TFDS's progress bars would otherwise mix with the CLI's one-line errors.
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith(_ERROR)]
        if errors:
            raise ValueError(errors[-1][len(_ERROR) :])
        raise RuntimeError(
            f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
        )
    lines = done.stdout.strip().splitlines()
    return list(json.loads(lines[-1])["splits"])
