"""Segment videos from files: frames (a folder or a video file) and given masks (or, for
trackers, boxes) in, DAVIS-layout palette PNGs (and an overlay video) out, plus, for families
that track boxes, a JSON of every object's box, rotated box and score per frame. Backs
`vos-jax segment` and `eval.py --checkpoint`."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np

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


def parse_boxes(text: str) -> np.ndarray:
    """'x,y,w,h;x,y,w,h' (pixels, integers) -> [N, 4] int boxes, one object per box (ids 1..N)."""
    boxes = []
    for i, part in enumerate(p for p in text.split(";") if p.strip()):
        try:
            box = [int(float(v)) for v in part.split(",")]
        except ValueError:
            box = []
        if len(box) != 4:
            raise ValueError(f"--boxes: box {i + 1} {part!r}: expected x,y,w,h (4 numbers)")
        boxes.append(box)
    if not boxes:
        raise ValueError("--boxes: expected at least one box x,y,w,h")
    return np.asarray(boxes, np.int64)


def boxes_mask(boxes: np.ndarray, height: int, width: int, max_objects: int) -> np.ndarray:
    """The first-frame mask of boxes [N, 4] (x, y, w, h): box k filled with id k + 1, larger
    boxes first so a smaller one inside stays whole; every box must be recoverable as its
    mask's bounding rectangle (what a tracker starts from)."""
    if len(boxes) > max_objects:
        raise ValueError(
            f"--boxes: {len(boxes)} boxes, the model tracks at most max_objects={max_objects}"
        )
    mask = np.zeros((height, width), np.uint8)
    for k in sorted(range(len(boxes)), key=lambda k: -boxes[k][2] * boxes[k][3]):
        x, y, w, h = (int(v) for v in boxes[k])
        if w <= 0 or h <= 0:
            raise ValueError(f"--boxes: box {k + 1} ({x},{y},{w},{h}) has zero size")
        if x < 0 or y < 0 or x + w > width or y + h > height:
            raise ValueError(
                f"--boxes: box {k + 1} ({x},{y},{w},{h}) is not inside the {width}x{height} frame"
            )
        mask[y : y + h, x : x + w] = k + 1
    for k, (x, y, w, h) in enumerate(boxes):
        ys, xs = np.nonzero(mask == k + 1)
        if not len(xs) or (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) != (x, y, x + w, y + h):
            raise ValueError(
                f"--boxes: box {k + 1} ({x},{y},{w},{h}) is covered by other boxes along an edge"
            )
    return mask


def _track_record(name: str, result) -> dict:
    """One frame of the tracks JSON: per object id its score, box (x0, y0, x1, y1) and rotated
    box; a frame without the family's boxes (the given first frame) gets its masks' boxes."""
    objects = {}
    for i, obj in enumerate(result.ids):
        record = {"score": float(result.scores[i])}
        if result.boxes is not None:
            record["box"] = [round(float(v), 2) for v in result.boxes[i]]
        else:
            ys, xs = np.nonzero(result.labels == obj)
            if len(xs):
                record["box"] = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
        if result.rotated is not None:
            record["rotated"] = [[round(float(v), 2) for v in p] for p in result.rotated[i]]
        objects[str(obj)] = record
    return {"frame": name, "objects": objects}


def segment_video(
    propagator: Propagator,
    frames: str | os.PathLike,
    masks: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    overlay: str | os.PathLike | None = None,
    overwrite: bool = False,
    boxes: np.ndarray | None = None,
    tracks: str | os.PathLike | None = None,
) -> int:
    """Write `out_dir/<frame>.png` for every frame (and an overlay MP4, and for a tracker the
    `tracks` JSON of boxes and scores); -> number of frames. An unsupervised propagator takes no
    masks (`masks` None) and discovers the objects; `boxes` [N, 4] (x, y, w, h) instead of masks
    start a tracker from boxes."""
    names = frame_names(frames)
    if masks is not None and boxes is not None:
        raise ValueError("--masks and --boxes: give one of them")
    if propagator.unsupervised != (masks is None and boxes is None):
        raise ValueError(
            "masks: an unsupervised (zero-shot) model takes none; a semi-supervised one needs "
            "the first frame's mask (or, for a tracker, boxes)"
        )
    if boxes is not None:
        height, width = next(iter(read_frames(frames))).shape[:2]
        given = {0: boxes_mask(boxes, height, width, propagator.max_objects)}
    else:
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
    records, first_result = [], None
    try:
        for name, frame, result in zip(names, for_overlay, results, strict=True):
            write_mask(out_dir / f"{name}.png", result.labels)
            if writer:
                writer.write(frame, result.labels, result.rotated)
            if first_result is None:
                first_result = (name, result)
            elif result.boxes is not None:  # a tracker: every frame, the first one too
                records = records or [_track_record(*first_result)]
                records.append(_track_record(name, result))
    finally:
        if writer:
            writer.close()
    if tracks and records:
        Path(tracks).write_text(json.dumps({"frames": records}, indent=1))
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
