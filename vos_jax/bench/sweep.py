"""`vos-jax bench` over several batch sizes and object counts: a table of the runs and a plot of
frames/s against batch size, one line per object count (matplotlib, the `bench` extra)."""

from __future__ import annotations

import os
from pathlib import Path

COLUMNS = ("batch", "objects", "ms_per_step", "ms_per_frame", "frames_per_s", "gflops_per_frame",
           "tflops_per_s", "mfu", "compiled_mb", "recompiles")  # fmt: skip


def table(lines: list[dict]) -> str:
    """The runs as an aligned text table (a column only where every run has it)."""
    columns = [c for c in COLUMNS if all(c in line for line in lines)]
    rows = [columns] + [[_text(line[c]) for c in columns] for line in lines]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    return "\n".join(
        "  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in rows
    )


def plot(lines: list[dict], path: str | os.PathLike) -> Path:
    """frames/s vs batch (log 2), one line per object count -> the PNG written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'vos-jax[bench]'") from None
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"--plot {path}: expected a .png file name")
    figure, axes = plt.subplots(figsize=(6, 4))
    for objects in sorted({line["objects"] for line in lines}):
        runs = sorted((x["batch"], x["frames_per_s"]) for x in lines if x["objects"] == objects)
        axes.plot(*zip(*runs, strict=True), marker="o", label=f"{objects} objects")
    first = lines[0]
    height, width = first["size"]
    title = f"{first['family']} {first['variant']} {first['mode']}, {height}x{width}, "
    title += f"{first['dtype']}, {first['device']}"
    axes.set(xlabel="batch", ylabel="frames / s", title=title)
    axes.set_xscale("log", base=2)
    axes.grid(True, alpha=0.3)
    axes.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def _text(value) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
