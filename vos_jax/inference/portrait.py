"""`vos-jax portrait`: a person (or hair) mask on every frame of a user's video, fed back as the
next frame's prior as MediaPipe's hair graph does (families.portrait.mediapipe_step), and an
effect drawn with it: keep-colour (the person in colour, the background grey), blur, replace
(the background by an image of the frame's size) or matte (the mask itself).

Frames stream in and out one at a time (constant memory whatever the length). The output video
(and the masks folder) is written beside OUT under a temporary name and renamed when complete:
an interrupted run leaves no half result, and an existing one is replaced only with `overwrite`.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from vos_jax.families import load_model
from vos_jax.families import portrait as family
from vos_jax.io.masks import write_mask
from vos_jax.io.video import Mp4Writer, frame_names, read_frames, video_fps

EFFECTS = ("keep-colour", "blur", "replace=IMAGE", "matte")
# One frame at a time, XLA:CPU's multi-threaded Eigen convolutions spend more on handing work to
# threads than they save: the selfie model at batch 1 runs in 4.6-4.9 ms instead of 7.0-8.3 ms on
# a 2-core CPU (benchmarks/portrait.py); at batch 64 it makes no consistent difference.
ONE_FRAME_XLA_FLAG = "--xla_cpu_multi_thread_eigen=false"
DEFAULT_SIZES = {"HairNet": (512, 512), "SelfieNet": (256, 256)}  # as MediaPipe runs them


@dataclass(frozen=True)
class Effect:
    kind: str  # keep-colour | blur | replace | matte
    background: np.ndarray | None = None  # replace: RGB uint8 [H, W, 3]

    def apply(self, frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """frame [H, W, 3] uint8, mask [H, W] in 0..1 -> the edited frame [H, W, 3] uint8."""
        if self.kind == "matte":
            return np.repeat(np.round(mask * 255).astype(np.uint8)[..., None], 3, -1)
        if self.kind == "keep-colour":
            back = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        elif self.kind == "blur":
            sigma = max(frame.shape[:2]) / 60.0
            back = cv2.GaussianBlur(frame, (0, 0), sigma)
        else:
            if self.background.shape != frame.shape:
                raise ValueError(
                    f"replace: the image is {self.background.shape[1]}x"
                    f"{self.background.shape[0]}, the video {frame.shape[1]}x{frame.shape[0]}; "
                    "give an image of the video's size"
                )
            back = self.background
        alpha = mask[..., None].astype(np.float32)
        return np.round(alpha * frame + (1 - alpha) * back).astype(np.uint8)


def prefer_one_frame_cpu_flags() -> None:
    """Add ONE_FRAME_XLA_FLAG to $XLA_FLAGS unless the user set that flag; it takes effect only
    in a process whose JAX backend has not started yet (the CLI), and only on the CPU."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {ONE_FRAME_XLA_FLAG}".strip()


def parse_effect(text: str) -> Effect:
    """'keep-colour', 'blur', 'matte' or 'replace=IMAGE' (the image read here)."""
    if text in ("keep-colour", "blur", "matte"):
        return Effect(text)
    if text.startswith("replace="):
        path = Path(text.split("=", 1)[1])
        image = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR) if path.is_file() else None
        if image is None:
            raise ValueError(f"--effect replace: {path} is not a readable image")
        return Effect("replace", cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    raise ValueError(f"--effect: expected one of {', '.join(EFFECTS)}, got {text!r}")


def find_model(name: str) -> tuple:
    """--model: 'hair', 'selfie' or 'selfie_landscape' (the file in an installed `mediapipe`
    package or in $VOS_JAX_MEDIAPIPE; nothing is downloaded), a .tflite file (imported here) or
    a vos-jax portrait checkpoint folder -> (model, variables, input size (H, W)). A checkpoint
    trained by vos-jax runs at its training config's input size, others as MediaPipe runs them."""
    from vos_jax.convert import mediapipe

    path = Path(name)
    if name in mediapipe.MEMBERS:
        path = _installed(mediapipe.MEMBERS[name])
    if path.is_dir():
        fam, model, variables, meta = load_model(path)
        if fam is not family:
            raise ValueError(f"--model {path}: a {meta['family']} checkpoint, not a portrait one")
        trained = meta.get("inference", {})
        if "input_height" in trained:
            return model, variables, (trained["input_height"], trained["input_width"])
        return model, variables, DEFAULT_SIZES[type(model).__name__]
    if path.suffix == ".tflite":
        graph = mediapipe.read_graph(path)
        kwargs, variables = mediapipe.import_graph(graph)
        size = tuple(graph.tensors[graph.inputs[0]].shape[1:3])
        return family.MODEL(**kwargs), variables, size
    raise ValueError(
        f"--model {name}: expected hair, selfie, selfie_landscape, a .tflite file or a portrait "
        "checkpoint folder"
    )


def _installed(filename: str) -> Path:
    import importlib.util

    places = []
    if os.environ.get("VOS_JAX_MEDIAPIPE"):
        places.append(Path(os.environ["VOS_JAX_MEDIAPIPE"]))
    spec = importlib.util.find_spec("mediapipe")
    if spec is not None and spec.origin:
        places.append(Path(spec.origin).parent)
    for place in places:
        found = sorted(place.rglob(filename))
        if found:
            return found[0]
    raise FileNotFoundError(
        f"{filename}: not in an installed mediapipe package (pip install mediapipe==0.10.21) nor "
        f"in $VOS_JAX_MEDIAPIPE; pass --model path/to/{filename} or a converted checkpoint"
    )


def run(
    source: str | os.PathLike,
    out: str | os.PathLike,
    model_name: str = "selfie",
    effect: str = "keep-colour",
    masks_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    ratio: float = 0.9,
    size: tuple[int, int] | None = None,
    progress: bool = True,
) -> dict:
    """Segment `source` (a video file or a folder of frames) and write the edited video to
    `out` (.mp4); `size`: the model's input size (default: the model's own, see `find_model`);
    -> {frames, seconds, fps}."""
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"--out {out}: expected an .mp4 file name")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (--overwrite replaces it)")
    masks_dir = None if masks_dir is None else Path(masks_dir)
    if masks_dir is not None and masks_dir.exists():
        if not masks_dir.is_dir() or (any(masks_dir.iterdir()) and not overwrite):
            raise FileExistsError(f"--masks {masks_dir}: exists (--overwrite replaces it)")
    frame_names(source)  # the input first: a missing video is named before any model search
    chosen = parse_effect(effect)
    model, variables, model_size = find_model(model_name)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.stem}.partial.mp4")
    partial_masks = None if masks_dir is None else masks_dir.with_name(f".{masks_dir.name}.partial")
    if partial_masks is not None:
        shutil.rmtree(partial_masks, ignore_errors=True)
        partial_masks.mkdir(parents=True)
    writer = Mp4Writer(partial, video_fps(source))
    count, start = 0, time.perf_counter()
    bar = _progress(source) if progress else None
    try:
        masks = segment(read_frames(source), model, variables, size or model_size, ratio)
        for t, (frame, mask) in enumerate(masks):
            writer.write(chosen.apply(frame, mask))
            if partial_masks is not None:
                write_mask(partial_masks / f"{t:05d}.png", (mask > 0.5).astype(np.uint8))
            count += 1
            if bar is not None:
                bar.update(1)
        writer.close()
        if count == 0:
            raise ValueError(f"{source}: no frames")
        os.replace(partial, out)
        if partial_masks is not None:  # the whole folder at once: no stale frames of a longer run
            shutil.rmtree(masks_dir, ignore_errors=True)
            os.replace(partial_masks, masks_dir)
    finally:
        writer.close()
        partial.unlink(missing_ok=True)
        if partial_masks is not None:
            shutil.rmtree(partial_masks, ignore_errors=True)
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    return {"frames": count, "seconds": round(seconds, 2), "fps": round(count / seconds, 2)}


def segment(frames, model, variables, size: tuple[int, int], ratio: float = 0.9):
    """MediaPipe's recurrence over a stream of RGB uint8 frames [H, W, 3]: -> (frame, its mask
    [H, W] float in 0..1) one at a time, each mask fed back as the next frame's prior at the
    model's input size (one compilation for the whole stream)."""
    step = jax.jit(
        lambda frame, previous, blend: family.mediapipe_step(
            model, variables, frame[None], previous[None, None], blend[None, None], ratio
        )[0, 0]
    )
    previous = jnp.zeros(tuple(size), jnp.float32)
    for t, frame in enumerate(frames):
        previous = step(frame, previous, jnp.asarray(t > 0))
        mask = cv2.resize(
            np.asarray(previous), (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_LINEAR
        )
        yield frame, np.clip(mask, 0.0, 1.0)


def _progress(source):
    return tqdm(total=len(frame_names(source)), unit="frame", desc="portrait")
