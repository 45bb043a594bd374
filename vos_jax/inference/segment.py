"""Segment videos from files: frames (a folder or a video file) and given masks in, DAVIS-layout
palette PNGs (and an overlay video) out. Backs `vos-jax segment` and `eval.py --checkpoint`."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from vos_jax.inference.engine import Propagator, propagate, propagate_free
from vos_jax.io.layouts import DavisLayout
from vos_jax.io.masks import read_mask, write_mask
from vos_jax.io.video import OverlayWriter, frame_names, read_frames


def given_masks(masks: str | os.PathLike, names: list[str]) -> dict[int, object]:
    """{frame index: [H, W] ids}: a single PNG is frame 0's mask; a folder holds `<frame>.png`
    for every frame where objects are given (YouTube-VOS style: at each object's first frame)."""
    masks = Path(masks)
    if masks.is_file():
        return {0: read_mask(masks)}
    if not masks.is_dir():
        raise FileNotFoundError(f"{masks}: expected the first frame's mask PNG or a folder of them")
    index = {name: t for t, name in enumerate(names)}
    out = {}
    for path in sorted(masks.glob("*.png")):
        if path.stem not in index:
            raise ValueError(f"{path}: no frame named {path.stem!r} among the frames")
        out[index[path.stem]] = read_mask(path)
    if 0 not in out:
        raise FileNotFoundError(f"{masks}: no mask for the first frame {names[0]}.png")
    return out


def segment_video(
    propagator: Propagator,
    frames: str | os.PathLike,
    masks: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    overlay: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> int:
    """Write `out_dir/<frame>.png` for every frame (and an overlay MP4); -> number of frames.
    An unsupervised propagator takes no masks (`masks` None) and discovers the objects."""
    names = frame_names(frames)
    if propagator.unsupervised != (masks is None):
        raise ValueError(
            "masks: an unsupervised (zero-shot) model takes none; a semi-supervised one needs "
            "the first frame's mask"
        )
    given = given_masks(masks, names) if masks is not None else {0: None}
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.glob("*.png")) and not overwrite:
        raise FileExistsError(f"{out_dir}: already holds results; pass --overwrite to replace them")
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = OverlayWriter(overlay) if overlay else None
    first = given.pop(0)
    # Two views of one frame stream: the engine reads a frame, then we write its overlay; tee
    # holds only that one frame in between.
    for_engine, for_overlay = itertools.tee(read_frames(frames))
    if propagator.unsupervised:
        results = propagate_free(propagator, for_engine)
    else:
        results = propagate(propagator, for_engine, first, given)
    try:
        for name, frame, result in zip(names, for_overlay, results, strict=True):
            write_mask(out_dir / f"{name}.png", result.labels)
            if writer:
                writer.write(frame, result.labels)
    finally:
        if writer:
            writer.close()
    return len(names)


def segment_davis(
    propagator: Propagator,
    davis_root: str | os.PathLike,
    sequences: list[str],
    results_dir: str | os.PathLike,
    resolution: str = "480p",
    overwrite: bool = False,
) -> None:
    """Segment DAVIS sequences from their first-frame annotation (none for an unsupervised
    propagator) into `results_dir/<seq>/`."""
    layout = DavisLayout(Path(davis_root), resolution)
    for seq in sequences:
        first = None if propagator.unsupervised else layout.first_mask_path(seq)
        out = Path(results_dir) / seq
        segment_video(propagator, layout.frames_dir(seq), first, out, overwrite=overwrite)
