"""Build a TFDS dataset from its manual-download folder (backs `vos-jax build-dataset`).

The builders' package depends on `vos_jax.io`; vos_jax never imports it (the two packages would
import each other), so the build runs as its command in a child process.

Each build records its source beside the dataset, in `<data_dir>/<name>/<config>/` `source.json`:
the manual dir and a fingerprint of its files (relative paths, sizes, modification times).
Building again from the same source is a no-op; from another or a changed one it is refused unless
`overwrite`, which builds the new dataset aside and replaces the old one only once it succeeded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_BUILDERS = "tfds_builders"  # run as `python -m`, never imported
_ERROR = "error: "  # the command's one-line error on bad input (exit code 2)
SOURCE_FILE = "source.json"  # in <data_dir>/<name>/<config>/, beside the version folders


def build_dataset(
    name: str,
    config: str,
    manual_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    overwrite: bool = False,
) -> list[str]:
    """Prepare `name/config` (e.g. davis_vos/2017_480p) under `data_dir`; return its split names.

    Reads the official files in `manual_dir`; downloads nothing. A dataset already prepared there
    from the same files is left as is; one prepared from other files (or of unknown source) is
    refused unless `overwrite` (see the module's docstring). Read it with
    `vos_jax.data.sources.TfdsVideoSource`. Bad input raises ValueError with the command's
    one-line error (naming the file and what was expected).
    """
    return prepare(name, config, manual_dir, data_dir, overwrite)[0]


def fingerprint(manual_dir: Path, skip: Path | None = None) -> dict:
    """{"manual_dir", "files", "bytes", "sha256"}: the files under `manual_dir` (relative path,
    size, modification time), without those under `skip` (a data dir inside it)."""
    digest, count, total = hashlib.sha256(), 0, 0
    for path in sorted(manual_dir.rglob("*")):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        if path.is_file():
            stat = path.stat()
            rel = path.relative_to(manual_dir).as_posix()
            digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            count, total = count + 1, total + stat.st_size
    return {"manual_dir": os.fspath(manual_dir), "files": count, "bytes": total,
            "sha256": digest.hexdigest()}  # fmt: skip


def _describe(source: dict) -> str:
    return f"{source['manual_dir']} ({source['files']} files, fingerprint {source['sha256'][:12]})"


def prepare(
    name: str,
    config: str,
    manual_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    overwrite: bool = False,
) -> tuple[list[str], str]:
    """`build_dataset`, and what it did: "built", "unchanged" (already built from the same source:
    nothing done) or "rebuilt" (`overwrite`: the old build replaced)."""
    manual, data = (Path(p).expanduser().absolute() for p in (manual_dir, data_dir))
    target = data / name / config
    simple = re.fullmatch(r"\w+", name) and re.fullmatch(r"\w+", config)
    if not (simple and manual.is_dir() and target.exists()):
        splits = _run(name, config, manual, data)  # it reports bad names and a missing manual dir
        if manual.is_dir() and target.is_dir():
            _write_source(target, fingerprint(manual.resolve(), data.resolve()), splits)
        return splits, "built"
    if not target.is_dir():
        raise NotADirectoryError(f"--data_dir {data}: {target} is a file; expected a folder")
    source = fingerprint(manual.resolve(), data.resolve())
    try:
        recorded = json.loads((target / SOURCE_FILE).read_text())
        old = recorded["source"]
    except (OSError, ValueError, KeyError, TypeError):
        recorded = old = None
    if old is not None and old.get("sha256") == source["sha256"]:
        return list(recorded["splits"]), "unchanged"
    if not overwrite:
        was = f"from {_describe(old)}" if old else f"from an unknown source (no {SOURCE_FILE})"
        now = (
            "whose files changed since: "
            if old and old["manual_dir"] == source["manual_dir"]
            else ""
        )
        raise ValueError(
            f"--data_dir {data}: holds {name}/{config} built {was}, not from --manual_dir "
            f"{now}{_describe(source)}; pass --overwrite to rebuild it (or choose another "
            "--data_dir)"
        )
    # Built aside; the old build is replaced only once the new one succeeded.
    aside = Path(tempfile.mkdtemp(prefix=f".build-{name}-{config}-", dir=data))
    try:
        splits = _run(name, config, manual, aside)
        built = aside / name / config
        _write_source(built, source, splits)
        old_dir = target.with_name(f".{config}.replaced-{os.getpid()}")
        os.replace(target, old_dir)
        try:
            os.replace(built, target)
        except OSError:
            os.replace(old_dir, target)  # never neither
            raise
        shutil.rmtree(old_dir, ignore_errors=True)
    finally:
        shutil.rmtree(aside, ignore_errors=True)
    return splits, "rebuilt"


def _write_source(target: Path, source: dict, splits: list[str]) -> None:
    tmp = target / (SOURCE_FILE + ".tmp")
    tmp.write_text(json.dumps({"source": source, "splits": splits}, indent=1) + "\n")
    os.replace(tmp, target / SOURCE_FILE)


def _run(name: str, config: str, manual: Path, data: Path) -> list[str]:
    """`python -m tfds_builders build ...` in a child process -> its split names."""
    command = [sys.executable, "-m", _BUILDERS, "build", name, "--config", config]
    command += ["--manual_dir", os.fspath(manual), "--data_dir", os.fspath(data)]
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
