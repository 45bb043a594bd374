"""Segment videos from files: frames (a folder or a video file) and given masks (or, for
trackers, boxes) in, DAVIS-layout palette PNGs (and an overlay video) out, plus, for families
that track boxes, a JSON of every object's box, rotated box and score per frame. Backs
`vos-jax segment` and `eval.py --checkpoint`."""

from __future__ import annotations

import collections
import dataclasses
import itertools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vos_jax.inference import results
from vos_jax.inference.engine import FrameResult, Propagator, Video, propagate_videos
from vos_jax.io.layouts import DavisLayout
from vos_jax.io.masks import read_mask
from vos_jax.io.video import IMAGE_SUFFIXES, frame_names, frame_size, read_frames, video_fps

# The working resolution's default bound on a frame's longer side: 480p (854x480), the size
# class the families train at (DAVIS 480p; YouTube-VOS and the synthetic data are smaller or
# resized to it). Larger frames are segmented downscaled and their masks upsampled.
DEFAULT_MAX_SIZE = 854


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


def parse_max_size(text: str | None) -> int | tuple[int, int] | None:
    """`--max_size`: N (the frames' longer side at most N pixels), HxW (frames fit in H x W) or
    `none` (the frames' own size); None: `DEFAULT_MAX_SIZE`."""
    if text is None:
        return DEFAULT_MAX_SIZE
    text = str(text).strip().lower()
    if text in ("none", "full"):
        return None
    try:
        values = [int(v) for v in text.split("x")]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 1:
        raise ValueError(
            f"--max_size {text!r}: expected a positive integer (the longer side in pixels), "
            "HxW, or none"
        )
    return values[0] if len(values) == 1 else (values[0], values[1])


def working_size(
    height: int, width: int, max_size: int | tuple[int, int] | None
) -> tuple[int, int]:
    """The size a (height, width) frame is segmented at: downscaled (aspect kept) to fit
    `max_size` (see `parse_max_size`), never upscaled."""
    if max_size is None:
        return height, width
    if isinstance(max_size, int):
        scale = max_size / max(height, width)
    else:
        scale = min(max_size[0] / height, max_size[1] / width)
    if scale >= 1:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


def _resize(image: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    if image.shape[:2] == tuple(size):
        return image
    out = cv2.resize(image, (size[1], size[0]), interpolation=interpolation)
    return out[..., None] if out.ndim < image.ndim else out  # OpenCV drops a last axis of 1


def at_frame_size(result: FrameResult, size: tuple[int, int], given=None) -> FrameResult:
    """A working-size result at the frame size (H, W): per-object probabilities upsampled
    bilinearly, then the argmax (labels upsampled nearest where the engine kept none); boxes
    scaled. `given`: the frame's own given mask at full size (frame 0 of a supervised video)."""
    if result.labels.shape == tuple(size):
        return result
    if given is not None:
        labels = np.where(np.isin(given, result.ids), given, 0).astype(np.uint8)
    elif result.probs is not None:
        probs = _resize(result.probs, size, cv2.INTER_LINEAR)
        labels = np.asarray([0, *result.ids], np.uint8)[np.argmax(probs, axis=-1)]
    else:
        labels = _resize(result.labels, size, cv2.INTER_NEAREST)
    sy, sx = size[0] / result.labels.shape[0], size[1] / result.labels.shape[1]
    scale = lambda x, s: None if x is None else (np.asarray(x) * np.asarray(s)).astype(np.float32)
    return dataclasses.replace(
        result,
        labels=labels,
        boxes=scale(result.boxes, [sx, sy, sx, sy]),
        rotated=scale(result.rotated, [sx, sy]),
        probs=None,
    )


def memory_limit() -> tuple[int | None, str]:
    """(bytes free for a program, where): the accelerator's limit less what is in use, or on
    the CPU the host's available memory."""
    import jax

    device = jax.devices()[0]
    stats = device.memory_stats()
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0)), device.device_kind
    try:
        import psutil

        return int(psutil.virtual_memory().available), "the host"
    except ImportError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "the host"
    except (ValueError, OSError, AttributeError):
        return None, "the host"


def check_memory(propagator: Propagator, batch: int, height: int, width: int) -> int | None:
    """Compile the engine's step at (batch, height, width) (jit keeps the compilation for the
    run) and refuse, before any frame, a program larger than the memory there is; -> its bytes
    (arguments, outputs and temporaries), None where XLA gives no estimate."""
    import jax
    import jax.numpy as jnp

    spec = (
        jax.ShapeDtypeStruct((batch, height, width, 3), jnp.uint8),
        jax.ShapeDtypeStruct((batch, height, width), jnp.int32),
        jax.ShapeDtypeStruct((batch, propagator.max_objects + 1), jnp.bool_),
    )
    if not hasattr(propagator.step, "lower"):
        return None
    state = jax.eval_shape(propagator.init, *spec)
    stats = propagator.step.lower(state, *spec).compile().memory_analysis()
    if stats is None:
        return None
    need = int(
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        + stats.temp_size_in_bytes
        - stats.alias_size_in_bytes
    )
    limit, where = memory_limit()
    if limit is not None and need > limit:
        gib = lambda n: f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
        raise ValueError(
            f"--max_size: segmenting {height}x{width} frames ({batch} at a time) needs about "
            f"{gib(need)}, {where} has {gib(limit)} free; lower --max_size (or --batch)"
        )
    return need


class _Frames:
    """A video's frames for the engine, at the working size; with `keep`, each frame at its own
    size also waits in `originals` (for the overlay) until its result is written."""

    def __init__(self, source: Path, size: tuple[int, int], work: tuple[int, int], keep: bool):
        self.source, self.size, self.work = source, size, work
        self.originals = collections.deque() if keep else None

    def __iter__(self):
        for t, frame in enumerate(read_frames(self.source)):
            if frame.shape[:2] != self.size:
                raise ValueError(
                    f"{self.source}: frame {t} is {frame.shape[0]}x{frame.shape[1]}, frame 0 is "
                    f"{self.size[0]}x{self.size[1]}: expected frames of one size"
                )
            if self.originals is not None:
                self.originals.append(frame)
            yield _resize(frame, self.work, cv2.INTER_AREA)


def _video(
    propagator: Propagator,
    files: VideoFiles,
    names: list[str],
    size: tuple[int, int],
    work: tuple[int, int],
):
    """(the engine's view of a video at the working size, its frame reader, frame 0's given
    mask at full size): masks checked against the frames, none computed yet."""
    masks, boxes = files.masks, files.boxes
    if masks is not None and boxes is not None:
        raise ValueError("--masks and --boxes: give one of them")
    if propagator.unsupervised != (masks is None and boxes is None):
        raise ValueError(
            "masks: an unsupervised (zero-shot) model takes none; a semi-supervised one needs "
            "the first frame's mask (or, for a tracker, boxes)"
        )
    if boxes is not None:
        given = {0: boxes_mask(boxes, *size, propagator.max_objects)}
    else:
        given = given_masks(masks, names) if masks is not None else {0: None}
    for t, mask in given.items():
        if mask is not None and mask.shape != tuple(size):
            raise ValueError(
                f"{masks}: the mask of frame {names[t]} is {mask.shape[0]}x{mask.shape[1]}, the "
                f"frames ({files.frames}) are {size[0]}x{size[1]}"
            )
    first = given.pop(0)
    if first is not None and np.isin(first, (0, 255)).all():
        then = "objects start at their later masks" if given else "nothing will be tracked"
        print(f"warning: {masks}: the first frame's mask has no object; {then}", file=sys.stderr)
    shrink = lambda mask: _resize(mask, work, cv2.INTER_NEAREST)
    frames = _Frames(files.frames, size, work, keep=files.overlay is not None)
    later = {t: shrink(mask) for t, mask in given.items()}
    video = Video(frames, None if first is None else shrink(first), later)
    return video, frames, first


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
    propagator: Propagator,
    videos: list[VideoFiles],
    batch: int = 1,
    overwrite: bool = False,
    max_size: int | tuple[int, int] | None = DEFAULT_MAX_SIZE,
    progress: bool = False,
) -> list[int]:
    """Segment videos `batch` at a time in one compiled call per frame (`propagate_videos`) at
    the working size (`working_size`: frames larger than `max_size` downscaled, the masks
    written at the frame size); grouped by that size (one compilation each), longest first
    within a size so the videos of a batch end close together; -> the number of frames of each
    video. Every video's frames, masks and result places, and the compiled step's memory, are
    checked before any is segmented. Each video's results appear whole when it is done
    (`results.ResultWriter`). `progress`: a progress bar on stderr."""
    from tqdm import tqdm

    names = [frame_names(v.frames) for v in videos]
    outs = [p for v in videos for p in (v.out_dir, v.overlay, v.tracks) if p is not None]
    if len(set(outs)) < len(outs):
        raise ValueError(f"two videos would write the same results: {sorted(map(str, outs))}")
    for v in videos:
        results.check_targets(v.out_dir, v.overlay, v.tracks, overwrite)
    sizes = [tuple(frame_size(v.frames)) for v in videos]
    work = [working_size(*size, max_size) for size in sizes]
    prepared = [_video(propagator, *args) for args in zip(videos, names, sizes, work, strict=True)]
    order = sorted(range(len(videos)), key=lambda i: (work[i], -len(names[i])))
    for size in sorted(set(work)):
        check_memory(propagator, batch, *size)
    results.remove_stale(p.parent for p in outs)
    total = sum(map(len, names))
    bar = tqdm(total=total, unit="frame", file=sys.stderr, disable=not progress, mininterval=0.5)
    writers: dict[int, results.ResultWriter] = {}
    try:
        for i in order:
            v = videos[i]
            fps = video_fps(v.frames)
            writers[i] = results.ResultWriter(
                v.out_dir, v.overlay, v.tracks, names[i], overwrite, fps
            )
        for _, same_size in itertools.groupby(order, key=lambda i: work[i]):
            group = list(same_size)
            probs = any(work[i] != sizes[i] for i in group)
            engine = [prepared[i][0] for i in group]
            for k, frame, result in propagate_videos(propagator, engine, batch, probs):
                i, writer = group[k], writers[group[k]]
                _, frames, first = prepared[i]
                given = first if writer.done == 0 else None
                original = frames.originals.popleft() if frames.originals is not None else frame
                writer.add(original, at_frame_size(result, sizes[i], given))
                bar.update()
                if writer.done == len(names[i]) and videos[i].frames.is_dir():
                    writer.commit()  # a folder's frame count is exact; a video file's, not
            for i in group:
                if not writers[i].closed:
                    writers[i].commit()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    finally:
        bar.close()
    return [writers[i].done for i in range(len(videos))]


def segment_video(
    propagator: Propagator,
    frames: str | os.PathLike,
    masks: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    overlay: str | os.PathLike | None = None,
    overwrite: bool = False,
    boxes: np.ndarray | None = None,
    tracks: str | os.PathLike | None = None,
    max_size: int | tuple[int, int] | None = DEFAULT_MAX_SIZE,
) -> int:
    """Write `out_dir/<frame>.png` for every frame (and an overlay MP4, and for a tracker the
    `tracks` JSON of boxes and scores); -> number of frames. An unsupervised propagator takes no
    masks (`masks` None) and discovers the objects; `boxes` [N, 4] (x, y, w, h) instead of masks
    start a tracker from boxes. `max_size`: see `segment_videos`."""
    optional = lambda p: None if p is None else Path(p)
    files = VideoFiles(
        Path(frames), optional(masks), Path(out_dir), optional(overlay), optional(tracks), boxes
    )
    return segment_videos(propagator, [files], 1, overwrite, max_size)[0]


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
