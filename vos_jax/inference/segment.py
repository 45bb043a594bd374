"""Segment videos from files: frames (a folder or a video file) and given masks (or, for
trackers, boxes) in, DAVIS-layout palette PNGs (and an overlay video) out, plus, for families
that track boxes, a JSON of every object's box, rotated box and score per frame. Backs
`vos-jax segment` and `eval.py --checkpoint`."""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vos_jax.inference.engine import Propagator, Video, propagate_videos
from vos_jax.io.layouts import DavisLayout
from vos_jax.io.masks import read_mask, write_mask
from vos_jax.io.video import IMAGE_SUFFIXES, OverlayWriter, frame_names, frame_size, read_frames


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


@dataclass(frozen=True)
class VideoFiles:
    """One video of `segment_videos`: its frames (a folder or a video file), its given masks (a
    PNG or a folder of them; None for an unsupervised model) or, for trackers, first-frame boxes
    [N, 4] (x, y, w, h), and where its results go: `out_dir/<frame>.png`, an overlay MP4 and,
    for a tracker, the `tracks` JSON of boxes and scores."""

    frames: Path
    masks: Path | None = None
    out_dir: Path = Path("results")
    overlay: Path | None = None
    tracks: Path | None = None
    boxes: np.ndarray | None = None


class _Results:
    """Writes one video's results as its frames are done."""

    def __init__(self, files: VideoFiles, names: list[str], overwrite: bool):
        self.files, self.names, self.done = files, names, 0
        out = files.out_dir
        if out.exists() and any(out.glob("*.png")) and not overwrite:
            raise FileExistsError(f"{out}: already holds results; pass --overwrite to replace them")
        out.mkdir(parents=True, exist_ok=True)
        self.writer = OverlayWriter(files.overlay) if files.overlay else None
        self.records, self.first = [], None

    def add(self, frame: np.ndarray, result) -> None:
        name = self.names[self.done]
        self.done += 1
        write_mask(self.files.out_dir / f"{name}.png", result.labels)
        if self.writer:
            self.writer.write(frame, result.labels, result.rotated)
        if self.first is None:
            self.first = (name, result)
        elif result.boxes is not None:  # a tracker: every frame, the first one too
            self.records = self.records or [_track_record(*self.first)]
            self.records.append(_track_record(name, result))

    def close(self) -> None:
        if self.writer:
            self.writer.close()
        if self.files.tracks and self.records:
            self.files.tracks.write_text(json.dumps({"frames": self.records}, indent=1))


def _video(propagator: Propagator, files: VideoFiles, names: list[str]) -> Video:
    """The engine's view of a video: its frame stream and given masks, checked."""
    masks, boxes = files.masks, files.boxes
    if masks is not None and boxes is not None:
        raise ValueError("--masks and --boxes: give one of them")
    if propagator.unsupervised != (masks is None and boxes is None):
        raise ValueError(
            "masks: an unsupervised (zero-shot) model takes none; a semi-supervised one needs "
            "the first frame's mask (or, for a tracker, boxes)"
        )
    if boxes is not None:
        height, width = frame_size(files.frames)
        given = {0: boxes_mask(boxes, height, width, propagator.max_objects)}
    else:
        given = given_masks(masks, names) if masks is not None else {0: None}
    first = given.pop(0)
    return Video(read_frames(files.frames), first, given)


VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def is_folder_of_videos(frames: str | os.PathLike) -> bool:
    """A folder without frames of its own but with folders of frames or video files in it."""
    folder = Path(frames)
    if not folder.is_dir() or any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
        return False
    return any(p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES for p in folder.iterdir())


def video_files(
    frames: str | os.PathLike,
    masks: str | os.PathLike | None,
    out: Path,
    overlay: bool,
    boxes: np.ndarray | None = None,
) -> VideoFiles:
    """One video's files: results in `out/<video>/`, the overlay `out/<video>_overlay.mp4`, a
    tracker's boxes `out/<video>_tracks.json` (<video>: the folder's or the file's name)."""
    path = Path(frames)
    name = path.stem if path.is_file() else path.name
    over = out / f"{name}_overlay.mp4" if overlay else None
    given = None if masks is None else Path(masks)
    return VideoFiles(path, given, out / name, over, out / f"{name}_tracks.json", boxes)


def folder_of_videos(
    frames: str | os.PathLike, masks: str | os.PathLike | None, out: Path, overlay: bool
) -> list[VideoFiles]:
    """Every video of a folder (sub-folders of frames, video files; e.g. DAVIS's
    JPEGImages/480p) with its masks from `masks/<video>/` or `masks/<video>.png` (e.g.
    Annotations/480p); results in `out/<video>/`, overlays `out/<video>_overlay.mp4`."""
    paths = sorted(
        p for p in Path(frames).iterdir() if p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES
    )
    videos = []
    for path in paths:
        name = path.stem if path.is_file() else path.name
        given = None
        if masks is not None:
            options = [Path(masks) / name, Path(masks) / f"{name}.png"]
            given = next((m for m in options if m.exists()), None)
            if given is None:
                raise FileNotFoundError(f"--masks {masks}: no {name}/ or {name}.png for {path}")
        videos.append(video_files(path, given, out, overlay))
    return videos


def segment_videos(
    propagator: Propagator, videos: list[VideoFiles], batch: int = 1, overwrite: bool = False
) -> list[int]:
    """Segment videos `batch` at a time in one compiled call per frame (`propagate_videos`):
    grouped by frame size (one compilation each), longest first within a size so the videos of
    a batch end close together; -> the number of frames of each video. Every video's masks,
    given files and output folder are checked before any is segmented."""
    names = [frame_names(v.frames) for v in videos]
    engine_videos = [_video(propagator, v, n) for v, n in zip(videos, names, strict=True)]
    sizes = [frame_size(v.frames) for v in videos]
    order = sorted(range(len(videos)), key=lambda i: (sizes[i], -len(names[i])))
    sinks = {i: _Results(videos[i], names[i], overwrite) for i in order}
    try:
        for _, same_size in itertools.groupby(order, key=lambda i: sizes[i]):
            group = list(same_size)
            results = propagate_videos(propagator, [engine_videos[i] for i in group], batch)
            for k, frame, result in results:
                sinks[group[k]].add(frame, result)
    finally:
        for sink in sinks.values():
            sink.close()
    return [sinks[i].done for i in range(len(videos))]


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
    optional = lambda p: None if p is None else Path(p)
    files = VideoFiles(
        Path(frames), optional(masks), Path(out_dir), optional(overlay), optional(tracks), boxes
    )
    return segment_videos(propagator, [files], 1, overwrite)[0]


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
