"""Frames in (a folder of images or a video file), overlays out (an MP4 of masks over frames)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from vos_jax.io.masks import davis_palette

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def frame_names(source: str | os.PathLike) -> list[str]:
    """Names of the frames (stems of a folder's images, or 00000, 00001, ... of a video)."""
    source = Path(source)
    if source.is_dir():
        names = [p.stem for p in _image_paths(source)]
    else:
        names = [f"{t:05d}" for t in range(_video_length(source))]
    return names


def natural_key(name: str) -> tuple:
    """Sort key of natural order: runs of digits compare as numbers (`2.jpg` before `10.jpg`),
    the rest as text; names equal as numbers (`1`, `01`) fall back to plain text order."""
    parts = re.split(r"(\d+)", name)  # text, digits, text, ...: each position one kind
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), name


def _image_paths(folder: Path) -> list[Path]:
    """A folder's frames in natural order (`0, 1, 2, 10`); two frames of one name (`00005.jpg`
    and `00005.png`) would write one result, so they are refused."""
    paths = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    if not paths:
        raise FileNotFoundError(f"{folder}: no .jpg/.png frames")
    paths.sort(key=lambda p: natural_key(p.name))
    stems: dict[str, Path] = {}
    for path in paths:
        if path.stem in stems:
            raise ValueError(
                f"{folder}: frames {stems[path.stem].name} and {path.name} have the same name "
                f"{path.stem!r} (one result each): expected one image per frame name"
            )
        stems[path.stem] = path
    return paths


def _video_length(path: Path) -> int:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: neither a folder of frames nor a video file")
    capture = cv2.VideoCapture(os.fspath(path))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    if count <= 0:
        raise ValueError(f"{path}: cannot read as a video")
    return count


def read_frames(source: str | os.PathLike) -> Iterator[np.ndarray]:
    """Yield [H, W, 3] uint8 RGB frames one at a time (a long video never sits in memory)."""
    source = Path(source)
    if source.is_dir():
        for path in _image_paths(source):
            bgr = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"{path}: cannot decode the image")
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return
    _video_length(source)
    capture = cv2.VideoCapture(os.fspath(source))
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def frame_size(source: str | os.PathLike) -> tuple[int, int]:
    """(H, W) of a video's frames, from its first frame (a folder) or its header (a file)."""
    source = Path(source)
    if source.is_dir():
        return next(read_frames(source)).shape[:2]
    _video_length(source)
    capture = cv2.VideoCapture(os.fspath(source))
    size = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    capture.release()
    return size


def video_fps(source: str | os.PathLike, default: float = 24.0) -> float:
    """Frames per second of a video file (`default` for a folder of frames or an unknown rate)."""
    source = Path(source)
    if source.is_dir():
        return default
    capture = cv2.VideoCapture(os.fspath(source))
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return float(fps) if fps and np.isfinite(fps) and 1 <= fps <= 1000 else default


class Mp4Writer:
    """RGB frames to an MP4 (OpenCV's writer, opened at the first frame's size)."""

    def __init__(self, path: str | os.PathLike, fps: float = 24.0):
        self.path, self.fps, self._writer = Path(path), fps, None

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            size = (frame.shape[1], frame.shape[0])
            self._writer = cv2.VideoWriter(os.fspath(self.path), fourcc, self.fps, size)
            if not self._writer.isOpened():
                raise ValueError(f"{self.path}: cannot open for writing")
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def overlay(frame: np.ndarray, ids: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the DAVIS colours of the objects over an [H, W, 3] frame, with dark contours."""
    colours = davis_palette()[ids]
    objects = (ids > 0)[..., None]
    out = np.where(objects, (1 - alpha) * frame + alpha * colours, frame).astype(np.uint8)
    edges = cv2.morphologyEx(ids, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    out[edges] = (0.3 * out[edges]).astype(np.uint8)
    return out


class OverlayWriter(Mp4Writer):
    """Writes overlay frames (masks over frames) to an MP4."""

    def write(self, frame: np.ndarray, ids: np.ndarray, polygons=None) -> None:
        """One frame with its objects `ids` [H, W]; `polygons` [N, 4, 2] (x, y): boxes drawn on
        top (a tracker's rotated boxes)."""
        image = overlay(frame, ids)
        if polygons is not None and len(polygons):
            finite = [p for p in np.asarray(polygons) if np.all(np.isfinite(p))]
            corners = [np.round(p).astype(np.int32).reshape(-1, 1, 2) for p in finite]
            cv2.polylines(image, corners, True, (255, 255, 0), 2)
        super().write(image)
