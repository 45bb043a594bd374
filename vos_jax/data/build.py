"""Build a TFDS dataset from its manual-download folder (backs `vos-jax build-dataset`)."""

from __future__ import annotations

import os
from pathlib import Path


def build_dataset(
    name: str, config: str, manual_dir: str | os.PathLike, data_dir: str | os.PathLike
) -> list[str]:
    """Prepare `name/config` (e.g. davis_vos/2017_480p) under `data_dir`; return its split names.

    Reads the official files in `manual_dir`; downloads nothing. Read the result with
    `tfds.data_source(f"{name}/{config}", split=..., data_dir=data_dir)` after
    `import tfds_builders`. A dataset already prepared there is left as is.
    """
    import tensorflow_datasets as tfds  # imported late: the CLI's other commands don't need it

    import tfds_builders

    if name not in tfds_builders.BUILDERS:
        known = ", ".join(sorted(tfds_builders.BUILDERS))
        raise ValueError(f"unknown dataset {name!r}; choose one of: {known}")
    builder_cls = tfds_builders.BUILDERS[name]
    configs = [c.name for c in builder_cls.BUILDER_CONFIGS]
    if config not in configs:
        raise ValueError(
            f"unknown config {config!r} of {name}; choose one of: {', '.join(configs)}"
        )
    manual = Path(manual_dir).expanduser().resolve()
    if not manual.is_dir():
        raise tfds_builders.DatasetLayoutError(
            f"{manual}: manual dir not found.\n{builder_cls.MANUAL_DOWNLOAD_INSTRUCTIONS}"
        )
    data = Path(data_dir).expanduser().resolve()
    builder = builder_cls(config=config, data_dir=os.fspath(data))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual))
    )
    return sorted(builder.info.splits.keys())
