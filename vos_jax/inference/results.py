"""One video's result files (palette PNGs, overlay MP4, a tracker's boxes JSON), written whole or
not at all: under hidden names beside their places (same filesystem), renamed into place when
the video is done. An exception or a signal (`interruptible`) removes them; what a `kill -9`
leaves (`.<name>.vos-jax-partial.<pid>.<token>`) is never read as a result and is removed by the
next run once that PID is gone."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import secrets
import shutil
import signal
import threading
from pathlib import Path

import numpy as np

from vos_jax.io.masks import write_mask
from vos_jax.io.video import OverlayWriter

PARTIAL = ".vos-jax-partial."


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived inside `interruptible` (a BaseException, as KeyboardInterrupt:
    no `except Exception` swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_critical = [0]  # depth of `_deferred` sections: a signal there waits for their end
_pending: list[int] = []


def _on_signal(signum, _frame):
    if _critical[0]:
        _pending.append(signum)
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def interruptible():
    """SIGINT and SIGTERM raise `Interrupted` (so results in progress are removed) instead of
    a traceback or an instant exit; renames into place finish first. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def _deferred():
    _critical[0] += 1
    try:
        yield
    finally:
        _critical[0] -= 1
        if not _critical[0] and _pending:
            signum = _pending.pop()
            _pending.clear()
            raise Interrupted(signum)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(folders) -> None:
    """Remove partial results that runs killed outright left in `folders` (their PID is gone)."""
    for folder in {Path(f) for f in folders}:
        if not folder.is_dir():
            continue
        for path in folder.glob(f".*{PARTIAL}*"):
            pid = path.name.split(PARTIAL, 1)[1].split(".", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)


def check_targets(out_dir: Path, overlay: Path | None, tracks: Path | None, overwrite: bool):
    """Refuse, before anything is computed, results that exist (without `overwrite`) and
    places that cannot hold them."""
    for path in {out_dir.parent, *(p.parent for p in (overlay, tracks) if p is not None)}:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path}: an existing file; expected a folder for the results")
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: an existing file; expected the results folder")
    if overwrite:
        return
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir}: already holds results; pass --overwrite to replace them")
    for path in (overlay, tracks):
        if path is not None and path.exists():
            raise FileExistsError(f"{path}: already exists; pass --overwrite to replace it")


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


class ResultWriter:
    """One video's results, written as its frames are done into partial files; `commit` renames
    them into place (the previous result, with `overwrite`, replaced whole: its PNG folder,
    overlay and tracks), `abort` removes them. `originals` queues the frames at their own size
    for the overlay (the engine may see them downscaled)."""

    def __init__(self, out_dir, overlay, tracks, names: list[str], overwrite: bool, fps=24.0):
        self.out_dir, self.overlay, self.tracks = Path(out_dir), overlay, tracks
        self.names, self.overwrite, self.done, self.closed = names, overwrite, 0, False
        token = f"{os.getpid()}.{secrets.token_hex(4)}"
        partial = lambda p, suffix="": p.with_name(f".{p.name}{PARTIAL}{token}{suffix}")
        self.partial_dir = partial(self.out_dir)
        self.partial_overlay = partial(overlay, ".mp4") if overlay else None
        self.partial_tracks = partial(tracks) if tracks else None
        self.partial_dir.mkdir(parents=True)
        self.writer = OverlayWriter(self.partial_overlay, fps) if overlay else None
        self.originals: collections.deque = collections.deque()
        self.records, self.first = [], None

    def add(self, frame: np.ndarray, result) -> None:
        name = self.names[self.done] if self.done < len(self.names) else f"{self.done:05d}"
        self.done += 1
        write_mask(self.partial_dir / f"{name}.png", result.labels)
        if self.writer:
            self.writer.write(frame, result.labels, result.rotated)
        if self.first is None:
            self.first = (name, result)
        elif result.boxes is not None:  # a tracker: every frame, the first one too
            self.records = self.records or [_track_record(*self.first)]
            self.records.append(_track_record(name, result))

    def commit(self) -> None:
        """Put the finished results in place (signals wait: the renames finish together)."""
        if self.writer:
            self.writer.close()  # the MP4 is complete (playable) before it is renamed
        if self.partial_tracks and self.records:
            self.partial_tracks.write_text(json.dumps({"frames": self.records}, indent=1))
        with _deferred():
            pairs = (self.partial_overlay, self.overlay), (self.partial_tracks, self.tracks)
            for partial, final in pairs:
                if partial is not None and partial.exists():
                    os.replace(partial, final)
                elif final is not None and final.exists() and self.overwrite:
                    final.unlink()  # the earlier result's: it is replaced whole
            old = self.partial_dir.with_name(self.partial_dir.name + ".old")
            if self.out_dir.exists():  # an empty folder, or --overwrite (checked up front)
                os.rename(self.out_dir, old)
            os.rename(self.partial_dir, self.out_dir)
            shutil.rmtree(old, ignore_errors=True)
            self.closed = True

    def abort(self) -> None:
        """Remove the partial results (an earlier complete result stays as it was)."""
        if self.closed:
            return
        with _deferred():
            if self.writer:
                self.writer.close()
            shutil.rmtree(self.partial_dir, ignore_errors=True)
            for path in (self.partial_overlay, self.partial_tracks):
                if path is not None:
                    path.unlink(missing_ok=True)
            self.closed = True
