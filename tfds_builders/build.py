"""Build a dataset from its manual-download folder; the `python -m tfds_builders` command.

    python -m tfds_builders build davis_vos --config 2017_480p --manual_dir M --data_dir D

On success the last stdout line is JSON, `{"splits": [...]}`; bad input ends in one `error: ...`
line on stderr and exit code 2 (`vos_jax.data.build` runs this command and relies on both).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import tensorflow_datasets as tfds

from tfds_builders import BUILDERS, DatasetLayoutError


def build_dataset(
    name: str, config: str, manual_dir: str | os.PathLike, data_dir: str | os.PathLike
) -> list[str]:
    """Prepare `name/config` (e.g. davis_vos/2017_480p) under `data_dir`; return its split names.

    Reads the official files in `manual_dir`; downloads nothing. A dataset already prepared there
    is left as is. Read it with `tfds.data_source(f"{name}/{config}", data_dir=data_dir, ...)`.
    """
    if name not in BUILDERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(BUILDERS))}")
    builder_cls = BUILDERS[name]
    configs = [c.name for c in builder_cls.BUILDER_CONFIGS]
    if config not in configs:
        raise ValueError(
            f"unknown config {config!r} of {name}; choose one of: {', '.join(configs)}"
        )
    manual = Path(manual_dir).expanduser().resolve()
    if not manual.is_dir():
        raise DatasetLayoutError(
            f"{manual}: manual dir not found.\n{builder_cls.MANUAL_DOWNLOAD_INSTRUCTIONS}"
        )
    data = Path(data_dir).expanduser().resolve()
    builder = builder_cls(config=config, data_dir=os.fspath(data))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual))
    )
    return sorted(builder.info.splits.keys())


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (it would print the whole usage block)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m tfds_builders", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    build = sub.add_parser("build", help="build a dataset from the official files")
    build.add_argument("name", help=" or ".join(sorted(BUILDERS)))
    build.add_argument("--config", required=True, help="e.g. 2017_480p, 2019")
    build.add_argument("--manual_dir", required=True, help="the extracted official files")
    build.add_argument("--data_dir", required=True, help="where TFDS writes the dataset")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or a bad argument already reported in one line
        return int(exit_.code or 0)
    try:
        splits = build_dataset(args.name, args.config, args.manual_dir, args.data_dir)
    except (ValueError, OSError) as err:
        # The first line names the file and what was wrong; the rest is the layout help.
        first = next(iter(str(err).splitlines()), "") or repr(err)
        print(f"error: {first}", file=sys.stderr)
        return 2
    print(json.dumps({"splits": splits}), flush=True)
    return 0
