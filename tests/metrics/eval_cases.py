"""Shared cases of the `eval.py` / `vos-jax eval` tests: tiny synthetic DAVIS folders built under
tmp_path with `write_mask` (two sequences of six 40x60 frames, two rectangular objects each), and
helpers to run the CLI in-process (`--workers 1`) and read what it wrote."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
from PIL import Image

from vos_jax.cli import main
from vos_jax.io.masks import davis_palette, write_mask

REPO = Path(__file__).resolve().parents[2]
H, W = 40, 60
SEQS = ("alpha", "beta")
N_FRAMES = 6
GLOBAL_HEADER = "J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay"
STATS = ("JM", "JR", "JD", "FM", "FR", "FD")
NUMBER = re.compile(r"^-?\d+\.\d{3}$")
ANNOTATIONS = {"semi-supervised": "Annotations", "unsupervised": "Annotations_unsupervised"}


# ----------------------------------------------------------------------------------- fixtures


def gt_frame(seq_index: int, t: int, objects: int = 2) -> np.ndarray:
    """[H, W] ids: object 1 moves right, object 2 moves down (both stay inside the frame)."""
    ids = np.zeros((H, W), np.uint8)
    x = 4 + 3 * t + 2 * seq_index
    ids[5:18, x : x + 14] = 1
    if objects >= 2:
        y = 20 + t + seq_index
        ids[y : y + 10, 35:52] = 2
    return ids


def imperfect(ids: np.ndarray) -> np.ndarray:
    """A plausible but wrong prediction: object 1 shifted 2 px right, object 2 cut in half."""
    out = np.zeros_like(ids)
    out[:, 2:][ids[:, :-2] == 1] = 1
    ys, xs = np.nonzero(ids == 2)
    if ys.size:
        keep = (ids == 2) & (np.arange(W)[None, :] < (xs.min() + xs.max()) // 2)
        out[keep] = 2
    return out


def make_davis(
    root: Path,
    task: str = "semi-supervised",
    objects: int = 2,
    grayscale_2016: bool = False,
    frames: int = N_FRAMES,
) -> Path:
    """Ground truth + ImageSets/2017/val.txt under `root`; returns root."""
    for s, seq in enumerate(SEQS):
        folder = root / ANNOTATIONS[task] / "480p" / seq
        for t in range(frames):
            ids = gt_frame(s, t, objects)
            path = folder / f"{t:05d}.png"
            if grayscale_2016:
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.where(ids > 0, 255, 0).astype(np.uint8), mode="L").save(path)
            else:
                write_mask(path, ids)
    sets = root / "ImageSets" / "2017"
    sets.mkdir(parents=True, exist_ok=True)
    (sets / "val.txt").write_text("".join(f"{seq}\n" for seq in SEQS))
    return root


def write_result(path: Path, ids: np.ndarray, mode: str = "P") -> None:
    """A method's result PNG: the ids as palette (or 'L') pixels, encoded as another writer would
    (zlib level 1), so that perfect results are not byte copies of the ground truth (which the
    evaluation refuses)."""
    image = Image.fromarray(ids.astype(np.uint8), mode=mode)
    if mode == "P":
        image.putpalette(davis_palette().ravel().tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, compress_level=1)


def make_results(
    root: Path, transform=lambda ids: ids, objects: int = 2, frames: int = N_FRAMES, mode="P"
) -> Path:
    """Result PNGs for every frame of every sequence: transform(ground-truth ids)."""
    for s, seq in enumerate(SEQS):
        for t in range(frames):
            write_result(root / seq / f"{t:05d}.png", transform(gt_frame(s, t, objects)), mode)
    return root


def run_eval(capsys, davis: Path, results: Path, *extra: str) -> tuple[int, str, str]:
    code = main(
        ["eval", "--davis_root", str(davis), "--results", str(results), "--workers", "1", *extra]
    )
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def written_reports(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.exists() for p in folder.glob("*.csv")] + [
        p for folder in folders if folder.exists() for p in folder.glob("*.json")
    ]


def assert_one_error_line(err: str, *expected: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, f"expected exactly one stderr line, got {lines!r}"
    assert lines[0].startswith("error: "), lines[0]
    for text in expected:
        assert text in lines[0], f"{text!r} not named in {lines[0]!r}"


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


# --------------------------------------------------------------------------------- happy path
