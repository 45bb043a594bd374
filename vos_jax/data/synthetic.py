"""Deterministic synthetic multi-object videos, written in the DAVIS or YouTube-VOS layouts.

A video has a scrolling textured background, K textured shapes (ellipse / polygon / blob) under
affine motion (translation + rotation + scale change) drawn in a depth order, so objects occlude
each other, and an unlabelled distractor that copies one object's texture. How fast objects move
and whether one is made to leave the frame and one to enter it late is the motion preset's
(`PRESETS`); with ``late_start`` (the YouTube-VOS layout) one object always enters late.
Everything is drawn from one seeded generator per video: the same arguments give byte-identical
files.
Arrays use the vocabulary T H W C; frames are uint8 [T, H, W, 3], masks uint8 [T, H, W].
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vos_jax.io.layouts import TASKS, DavisLayout, YoutubeLayout
from vos_jax.io.masks import write_mask

CATEGORIES = ("ellipse", "polygon", "blob")
TEXTURES = ("noise", "stripes", "spots")
FORMATS = ("davis", "youtube")
MIN_SIZE = 16
MAX_OBJECTS = 20
_SPRITE = 96  # each shape is drawn once at this size, then warped into every frame
_SPRITE_R = 44.0  # the shape's outer radius inside its sprite
_ATTEMPTS = 20  # re-draws (from the same generator, so still deterministic) if a check fails
_NORMALS = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # inward: L, R, T, B


@dataclass(frozen=True)
class Motion:
    """How a video moves. Its drift, scale change, spin, wave and background scroll unfold over a
    span of frames drawn log-uniformly per video from `span` (None: the video's own length), so a
    longer span is slower motion. With `inward` objects drift towards a random point about the
    frame's centre, as in video whose camera follows them, so that even fast ones mostly stay in
    view (else in a random direction). With `events`, when K >= 2 one object leaves the view (gone
    from EXIT_AT of the video on, through one of the two farthest borders, after another object
    was steered onto it) and one enters late (a sliver at frame 0 in the DAVIS layout, which needs
    every object in the first annotation). Without, objects leave only where their own motion
    takes them and enter only where the layout starts one late (YouTube-VOS)."""

    span: tuple[float, float] | None
    inward: bool
    events: bool


# "davis": as real DAVIS (benchmarks/motion_stats.py, tests/data/test_motion.py). Per frame, on
# davis-mini's 13 ground-truth sequences: centroid displacement / sqrt(area) median 0.034, 90th
# percentile 0.102; |log scale change| median 0.010, p90 0.035 (the preset, 40 videos at the
# demo's 144x240: 0.033, 0.108, 0.012, 0.035). Events, on the 30 DAVIS 2017 val videos (the
# published OSVOS masks stand in for their multi-object ground truth): an object has left the
# view by the last frame in 2 (0.07; the preset 0.075, by its own motion), 2 of 61 objects enter
# it (the preset 0).
# "hard": a whole video's motion within its own length (about 2x / 4.3x DAVIS's median / p90
# displacement at 24 frames), one object leaving and one entering in every video.
PRESETS = {
    "davis": Motion(span=(8.0, 80.0), inward=True, events=False),
    "hard": Motion(span=None, inward=False, events=True),
}
EXIT_AT = 0.7  # events: the leaving object is out of view from this share of the video on


@dataclass
class SyntheticVideo:
    """A rendered video with the ground truth that tests and demos need."""

    frames: np.ndarray  # uint8 [T, H, W, 3]
    masks: np.ndarray  # uint8 [T, H, W]: 0 background (and distractor), 1..K objects
    full_masks: np.ndarray  # bool [T, K, H, W]: each object as if nothing occluded it
    distractor_mask: np.ndarray  # bool [T, H, W]: visible pixels of the unlabelled distractor
    background: np.ndarray  # uint8 [T, H, W, 3]: the scrolling background alone
    categories: list[str]  # category of object id k + 1
    late_id: int  # object that enters late; 0 if none (always when K == 1)
    leave_id: int  # object made to leave the frame (preset events); 0 if none
    exit_frame: int  # first frame from which the leaving object is out of view; 0 if none
    distractor_of: int  # object id whose colours, texture and category the distractor copies


@dataclass
class _Entity:
    """A textured shape: sprite [S, S, 4] (RGB + alpha) and, once planned, its motion over T."""

    sprite: np.ndarray
    category: str
    r_out: float  # bounding radius about the sprite centre (sprite pixels)
    r_in: float  # radius of a disc about the sprite centre that lies inside the shape
    centre: np.ndarray | None = None  # [T, 2] (x, y) in frame pixels
    angle: np.ndarray | None = None  # [T] radians
    scale: np.ndarray | None = None  # [T] frame pixels per sprite pixel


def _motion(preset: str) -> Motion:
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    return PRESETS[preset]


def _check_video_args(num_frames, size, num_objects) -> tuple[int, int]:
    """Validate the per-video arguments; return (H, W)."""
    if not isinstance(num_frames, numbers.Integral) or num_frames < 2:
        raise ValueError(f"num_frames must be an integer >= 2, got {num_frames!r}")
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be a pair (H, W) of integers, got {size!r}") from None
    if min(h, w) < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE}x{MIN_SIZE} pixels, got {size!r}")
    if not isinstance(num_objects, numbers.Integral) or not 1 <= num_objects <= MAX_OBJECTS:
        raise ValueError(f"num_objects must be an integer in 1..{MAX_OBJECTS}, got {num_objects!r}")
    return h, w


def _smooth_noise(rng, h: int, w: int, cell: float) -> np.ndarray:
    """Low-frequency noise [h, w] in [0, 1]: a coarse random grid upsampled bicubically."""
    gh, gw = max(2, math.ceil(h / cell) + 1), max(2, math.ceil(w / cell) + 1)
    grid = rng.random((gh, gw), dtype=np.float32)
    up = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return (up - up.min()) / max(float(np.ptp(up)), 1e-6)


def _colours(rng) -> np.ndarray:
    """Two clearly different colours [2, 3] for a two-tone texture."""
    c0 = rng.uniform(20, 235, 3)
    d = rng.normal(size=3)
    c1 = np.clip(c0 + d / (np.linalg.norm(d) + 1e-9) * rng.uniform(70, 140), 0, 255)
    return np.stack([c0, c1]).astype(np.float32)


def _texture(rng, h: int, w: int, colours: np.ndarray, kind: str, scale: float) -> np.ndarray:
    """A smooth two-colour pattern [h, w, 3] float32 with features about `scale` pixels wide."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bend = _smooth_noise(rng, h, w, 2 * scale)
    if kind == "stripes":
        a = rng.uniform(0, np.pi)
        phase = (xx * np.cos(a) + yy * np.sin(a)) * np.float32(2 * np.pi / scale)
        field = 0.5 + 0.5 * np.sin(phase + 4.0 * bend)  # noise-bent, so not a plain grating
    elif kind == "spots":
        field = 1 / (1 + np.exp(-12 * (_smooth_noise(rng, h, w, scale / 2) - 0.5)))
    else:
        field = np.clip(1.6 * (_smooth_noise(rng, h, w, scale) - 0.5) + 0.5, 0, 1)
    grain = _smooth_noise(rng, h, w, 3) - 0.5  # fine detail, so there are no flat patches
    rgb = colours[0] + field[..., None] * (colours[1] - colours[0]) + 24 * grain[..., None]
    return rgb.astype(np.float32)


def _shape(rng, category: str) -> np.ndarray:
    """Anti-aliased alpha [S, S] of a shape that is star-shaped about the sprite centre."""
    th = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    if category == "ellipse":  # polar form of an ellipse with axes 1 and b, turned by `rot`
        b, rot = rng.uniform(0.5, 0.85), rng.uniform(0, np.pi)
        r = b / np.hypot(b * np.cos(th - rot), np.sin(th - rot))
    elif category == "polygon":
        k = int(rng.integers(5, 9))
        th = (np.arange(k) + rng.uniform(-0.3, 0.3, k)) * (2 * np.pi / k) + rng.uniform(0, 7)
        r = rng.uniform(0.6, 1.0, k)
    else:  # blob: a circle with a few low harmonics on its radius
        amp, ph = rng.uniform(0, 0.15, (3, 1)), rng.uniform(0, 7, (3, 1))
        r = 1 + (amp * np.cos(np.arange(2, 5)[:, None] * th + ph)).sum(0)
    r = _SPRITE_R * r / r.max()
    pts = np.stack([r * np.cos(th), r * np.sin(th)], 1) + (_SPRITE - 1) / 2
    pts = np.round(pts * 16).astype(np.int32)  # fillPoly with shift=4: sub-pixel vertices
    alpha = np.zeros((_SPRITE, _SPRITE), np.uint8)
    cv2.fillPoly(alpha, [pts], 255, lineType=cv2.LINE_AA, shift=4)
    return alpha.astype(np.float32) / 255


def _make_entity(rng, category: str, colours: np.ndarray, kind: str) -> _Entity:
    """Draw a textured sprite and measure its outer and inner radius about the centre."""
    alpha = _shape(rng, category)
    rgb = _texture(rng, _SPRITE, _SPRITE, colours, kind, _SPRITE / rng.uniform(3, 6))
    inside = (alpha > 0.5).astype(np.uint8)
    ys, xs = np.nonzero(inside)
    c, m = (_SPRITE - 1) / 2, _SPRITE // 2
    r_out = float(np.hypot(xs - c, ys - c).max()) + 1.0
    r_in = float(cv2.distanceTransform(inside, cv2.DIST_L2, 5)[m - 1 : m + 1, m - 1 : m + 1].min())
    sprite = np.concatenate([rgb, alpha[..., None]], -1)
    return _Entity(sprite, category, r_out, max(r_in - 1.0, 1.0))


def _pace(rng, t: np.ndarray, motion: Motion) -> float:
    """How much of its motion a video shows: its length over its span (1 for span None). A span
    drawn per video, so that some videos move slowly and some fast, as real ones do."""
    if motion.span is None:
        return 1.0
    low, high = motion.span
    return t[-1] / math.exp(rng.uniform(math.log(low), math.log(high)))


def _background(rng, t: np.ndarray, h: int, w: int, pace: float) -> np.ndarray:
    """Scrolling background [T, H, W, 3] float32: a larger texture seen through a moving window."""
    speed = rng.uniform(0.5, 1.2) * max(1.0, min(h, w) / 96) * pace
    a = rng.uniform(0, 2 * np.pi)
    v = speed * np.array([np.cos(a), np.sin(a)])
    m = math.ceil(speed * t[-1] / 2) + 2  # margin so the window never leaves the texture
    kind = TEXTURES[int(rng.integers(len(TEXTURES)))]
    tex = _texture(rng, h + 2 * m, w + 2 * m, _colours(rng), kind, min(h, w) / rng.uniform(2, 6))
    offsets = m + (t - t[-1] / 2)[:, None] * v
    mats = [np.array([[1, 0, ox], [0, 1, oy]]) for ox, oy in offsets]
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return np.stack([cv2.warpAffine(tex, mat, (w, h), flags=flags) for mat in mats])


def _depth(p: np.ndarray, side: int, h: int, w: int):
    """Signed distance of point(s) p [..., 2] inside the frame border `side` (L, R, T, B)."""
    x, y = p[..., 0], p[..., 1]
    return (x + 0.5, w - 0.5 - x, y + 0.5, h - 0.5 - y)[side]


def _layout(rng, h: int, w: int, n: int):
    """Jittered grid of n cells: frame-0 centres [n, 2], half cell size, border sides per cell.

    One entity per cell and radius <= half a cell means nothing overlaps in frame 0, so every
    object present there is visible (the DAVIS protocol needs all ids in the first annotation).
    """
    cols = math.ceil(math.sqrt(n * w / h))
    rows = math.ceil(n / cols)
    ch, cw = h / rows, w / cols
    cells = rng.permutation(rows * cols)[:n]
    r, c = cells // cols, cells % cols
    centres = np.stack([(c + 0.5) * cw - 0.5, (r + 0.5) * ch - 0.5], 1)
    on_border = np.stack([c == 0, c == cols - 1, r == 0, r == rows - 1], 1)  # L, R, T, B
    return centres, min(ch, cw) / 2, [np.flatnonzero(b) for b in on_border]


def _free_motion(rng, e: _Entity, c0, r0: float, t, h: int, w: int, pace: float, motion: Motion):
    """Smooth affine motion: drift + sideways wave, constant spin, exponential scale change."""
    u = t / t[-1] * pace  # the share of the motion unfolded by each frame
    e.scale = r0 / e.r_out * np.exp(rng.choice([-1, 1]) * rng.uniform(0.2, 0.45) * u)
    e.angle = rng.uniform(0, 2 * np.pi) + rng.choice([-1, 1]) * rng.uniform(0.02, 0.08) * t * pace
    if motion.inward:  # towards a point about the frame's centre
        aim = np.array([w - 1, h - 1]) * (0.5 + rng.uniform(-0.25, 0.25, 2)) - c0
        d = aim / max(float(np.linalg.norm(aim)), 1e-6)
    else:
        a = rng.uniform(0, 2 * np.pi)
        d = np.array([np.cos(a), np.sin(a)])
    amp, ph = rng.uniform(0, 0.04) * min(h, w), rng.uniform(0, 2 * np.pi)
    wave = amp * (np.sin(2 * np.pi * u / rng.uniform(0.5, 1.5) + ph) - np.sin(ph))
    drift = rng.uniform(0.1, 0.35) * min(h, w) * u
    e.centre = c0 + drift[:, None] * d + wave[:, None] * np.array([-d[1], d[0]])


def _leave(rng, e: _Entity, t, t_exit: int, h: int, w: int) -> None:
    """Move straight out through one of the two farthest borders, fully outside from t_exit."""
    c0 = e.centre[0]
    dist = np.array([_depth(c0, s, h, w) for s in range(4)])
    side = int(rng.choice(np.argsort(dist)[-2:]))
    # past the largest radius the object ever has, so that later growth cannot bring it back
    out = -_NORMALS[side] * (dist[side] + e.r_out * e.scale.max() + 1)
    slide = _NORMALS[side][::-1] * rng.uniform(-0.1, 0.1) * min(h, w)
    e.centre = c0 + (t / t_exit)[:, None] * (out + slide)


def _enter(rng, e: _Entity, cell_centre, sides, t, t_in: int, h: int, w: int) -> np.ndarray:
    """Enter through a border of its cell: a sliver at t_in, fully outside before it."""
    side = int(rng.choice(sides))
    n = _NORMALS[side]
    r_in = e.r_in * e.scale[t_in]
    off = min(0.3 * r_in, r_in - 1.0)  # centre just outside, yet >= 1 px of the shape inside
    base = cell_centre - n * (_depth(cell_centre, side, h, w) + off)
    r_max = e.r_out * e.scale.max()
    speed = (rng.uniform(1.2, 2.0) * e.r_out * e.scale[t_in] + off) / max(1, t[-1] - t_in)
    dt = t - t_in
    e.centre = base + np.where(dt >= 0, speed * dt, (r_max + 1 - off) * dt)[:, None] * n
    return base


def _chase(rng, chaser: _Entity, target: _Entity, t0: int, t_hi: int, h: int, w: int) -> None:
    """From frame t0, steer `chaser` onto `target` at some frame in (t0, t_hi): they overlap."""
    c = target.centre
    margin = np.maximum(1.0, 0.5 * target.r_in * target.scale)
    inside = (np.minimum(c, [w - 1, h - 1] - c) >= margin[:, None]).all(1)
    ok = np.flatnonzero(inside[t0 + 1 : t_hi]) + t0 + 1
    if not ok.size:  # too few frames between entry and exit: no guaranteed meeting
        return
    t_m = int(rng.choice(ok[len(ok) // 2 :]))  # a late meeting keeps the approach slow
    q = c[t_m] + rng.uniform(-0.2, 0.2, 2) * target.r_in * target.scale[t_m]
    p0 = chaser.centre[t0]
    u = np.clip((np.arange(len(c)) - t0) / (t_m - t0), 0, 1)
    ease = 1 - (1 - u) ** 2  # decelerate onto q, then rest there: the path stays smooth
    chaser.centre = np.where((u > 0)[:, None], p0 + (q - p0) * ease[:, None], chaser.centre)


def _plan(rng, t, h: int, w: int, k: int, late_start: bool, motion: Motion, pace: float):
    """K objects + a distractor (last), with motion; also the source, late, leave ids, exit."""
    looks = [
        (CATEGORIES[rng.integers(3)], _colours(rng), TEXTURES[rng.integers(3)]) for _ in range(k)
    ]
    src = int(rng.integers(k))  # the distractor copies this object's category, colours, texture
    ents = [_make_entity(rng, *look) for look in [*looks, looks[src]]]
    centres, half_cell, sides = _layout(rng, h, w, k + 1)
    for e, c0 in zip(ents, centres, strict=True):
        r0 = min(half_cell, 0.22 * min(h, w)) * rng.uniform(0.7, 0.95)
        jitter = (half_cell - r0) * rng.uniform(-1, 1, 2)
        _free_motion(rng, e, c0 + jitter, r0, t, h, w, pace, motion)
    if k == 1 or not (late_start or motion.events):
        return ents, src + 1, 0, 0, 0
    # the late object needs a cell on the frame border; one always exists among the K objects
    late = int(rng.choice([i for i in range(k) if sides[i].size]))
    t_in = max(1, round(0.25 * t[-1])) if late_start else 0
    if not motion.events:  # a late start only (YouTube-VOS layout)
        _enter(rng, ents[late], centres[late], sides[late], t, t_in, h, w)
        return ents, src + 1, late + 1, 0, 0
    leave = int(rng.choice([i for i in range(k) if i != late]))
    t_exit = min(max(1, round(EXIT_AT * t[-1])), max(1, len(t) - 2))
    _leave(rng, ents[leave], t, t_exit, h, w)
    _enter(rng, ents[late], centres[late], sides[late], t, t_in, h, w)
    # occlusion: some object (the late one when K == 2) meets the leaving one before it exits
    free = [i for i in range(k) if i not in (late, leave)]
    chaser = int(rng.choice(free)) if free else late
    t0 = t_in if chaser == late else 0
    _chase(rng, ents[chaser], ents[leave], t0, t_exit, h, w)
    return ents, src + 1, late + 1, leave + 1, t_exit


def _warp(e: _Entity, h: int, w: int) -> np.ndarray:
    """The entity in every frame, [T, H, W, 4] (RGB + alpha), by one affine warp per frame."""
    c = (_SPRITE - 1) / 2
    cos, sin = e.scale * np.cos(e.angle), e.scale * np.sin(e.angle)
    m = np.zeros((len(cos), 2, 3))
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = cos, -sin, e.centre[:, 0] - (cos - sin) * c
    m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = sin, cos, e.centre[:, 1] - (sin + cos) * c
    return np.stack([cv2.warpAffine(e.sprite, mt, (w, h), flags=cv2.INTER_LINEAR) for mt in m])


def _render(rng, num_frames: int, h: int, w: int, k: int, late_start: bool, motion: Motion):
    """Plan and draw one video, back to front (painter's algorithm) -> SyntheticVideo."""
    t = np.arange(num_frames, dtype=np.float64)
    pace = _pace(rng, t, motion)
    ents, src, late, leave, t_exit = _plan(rng, t, h, w, k, late_start, motion, pace)
    bg = _background(rng, t, h, w, pace)
    frames = bg.copy()
    layer = np.zeros((num_frames, h, w), np.uint8)  # 1..K objects, K + 1 the distractor
    full = np.zeros((num_frames, k, h, w), bool)
    for i in rng.permutation(k + 1):
        warped = _warp(ents[i], h, w)
        alpha = warped[..., 3:]
        frames += alpha * (warped[..., :3] - frames)  # soft edges; ids use alpha > 0.5
        inside = alpha[..., 0] > 0.5
        layer[inside] = i + 1
        if i < k:
            full[:, i] = inside
    # slow global illumination change and sensor noise, so no two frames match exactly
    gain = 1 + 0.06 * np.sin(2 * np.pi * t / rng.uniform(1, 3) / t[-1] + rng.uniform(0, 7))
    frames = frames * gain[:, None, None, None].astype(np.float32)
    frames += 2.0 * rng.standard_normal(frames.shape, dtype=np.float32)
    return SyntheticVideo(
        frames=np.clip(np.rint(frames), 0, 255).astype(np.uint8),
        masks=np.where(layer == k + 1, 0, layer).astype(np.uint8),
        full_masks=full,
        distractor_mask=layer == k + 1,
        background=np.clip(np.rint(bg), 0, 255).astype(np.uint8),
        categories=[e.category for e in ents[:k]],
        late_id=late,
        leave_id=leave,
        exit_frame=t_exit,
        distractor_of=src,
    )


def object_areas(masks: np.ndarray, num_objects: int) -> np.ndarray:
    """Visible pixel count of each object per frame: [T, K] from masks [T, H, W]."""
    return np.stack([np.bincount(m.ravel(), minlength=256)[1 : num_objects + 1] for m in masks])


def _meets_spec(v: SyntheticVideo, late_start: bool) -> bool:
    """Every object is seen; frame 0 shows all but a late starter; the leaver is gone at the end."""
    k = len(v.categories)
    area = object_areas(v.masks, k)
    expected0 = np.ones(k, bool)
    if v.late_id and late_start:
        expected0[v.late_id - 1] = False
    ok = np.array_equal(area[0] > 0, expected0) and bool((area > 0).any(0).all())
    if v.leave_id:
        ok = ok and not area[v.exit_frame :, v.leave_id - 1].any()
    return ok


def render_video(
    seed: int | Sequence[int],
    num_frames: int,
    size: tuple[int, int],
    num_objects: int,
    late_start: bool = True,
    preset: str = "davis",
) -> SyntheticVideo:
    """Like `generate_video`, but also return unoccluded masks, the distractor and the roles."""
    h, w = _check_video_args(num_frames, size, num_objects)
    motion = _motion(preset)
    rng = np.random.default_rng(seed)
    for _ in range(_ATTEMPTS):
        video = _render(rng, int(num_frames), h, w, int(num_objects), late_start, motion)
        if _meets_spec(video, late_start):
            return video
    raise RuntimeError(
        f"could not lay out {num_objects} visible objects in a {h}x{w} frame; "
        "use a larger size or fewer objects"
    )


def generate_video(
    seed: int | Sequence[int],
    num_frames: int,
    size: tuple[int, int],
    num_objects: int,
    late_start: bool = True,
    preset: str = "davis",
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic video -> frames uint8 [T, H, W, 3], masks uint8 [T, H, W] (ids 0..K).

    With late_start=True the late object is absent from frame 0; with False it is a sliver at
    the border in frame 0, so that frame 0 holds every id 1..K. `preset`: a name in `PRESETS`
    ("davis": motion as in real video, "hard": faster).
    """
    video = render_video(seed, num_frames, size, num_objects, late_start, preset)
    return video.frames, video.masks


def _save_jpeg(path: Path, frame: np.ndarray) -> None:
    """JPEG with fixed settings (quality 90, no optimisation) so that reruns are byte-identical."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame).save(path, format="JPEG", quality=90)


def _write_davis(root: Path, render: Callable[[int, bool], SyntheticVideo], n: int, n_train: int):
    """DAVIS 2017 layout: every frame annotated, the late object a sliver in frame 0. The same
    masks also go to `Annotations_unsupervised` (the unsupervised protocol's ground truth: here
    the labelled objects are exactly the salient ones; the distractor stays background)."""
    names = [f"synth-{i:03d}" for i in range(n)]
    layout = DavisLayout(root, "480p")
    for i, name in enumerate(names):
        video = render(i, False)
        for t, (frame, mask) in enumerate(zip(video.frames, video.masks, strict=True)):
            _save_jpeg(layout.frames_dir(name) / f"{t:05d}.jpg", frame)
            for task in TASKS:
                write_mask(layout.mask_path(name, f"{t:05d}", task), mask)
    for year in ("2016", "2017"):
        for split, split_names in (("train", names[:n_train]), ("val", names[n_train:])):
            path = layout.image_set_path(split, year)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(f"{name}\n" for name in split_names))


def _write_youtube_video(
    layout: YoutubeLayout, vid: str, video: SyntheticVideo, valid: bool
) -> dict:
    """One YouTube-VOS video: frames, annotations (all, or first appearances in valid) -> meta."""
    k = len(video.categories)
    names = [f"{5 * t:05d}" for t in range(len(video.frames))]  # every 5th frame of 30 fps
    visible = object_areas(video.masks, k) > 0  # [T, K]
    first = visible.argmax(0)  # every object is visible in some frame (checked when rendering)
    for name, frame in zip(names, video.frames, strict=True):
        _save_jpeg(layout.frames_dir(vid) / f"{name}.jpg", frame)
    if valid:  # as in YouTube-VOS valid: a mask only where objects first appear, holding only them
        for t in sorted(set(first.tolist())):
            new = np.isin(video.masks[t], np.flatnonzero(first == t) + 1)
            write_mask(layout.mask_path(vid, names[t]), np.where(new, video.masks[t], 0))
    else:
        for name, mask in zip(names, video.masks, strict=True):
            write_mask(layout.mask_path(vid, name), mask)
    objects = {}
    for i in range(k):
        frames = names[first[i] :] if valid else [names[t] for t in np.flatnonzero(visible[:, i])]
        objects[str(i + 1)] = {"category": video.categories[i], "frames": frames}
    return {"objects": objects}


def _write_youtube(root: Path, render: Callable[[int, bool], SyntheticVideo], n: int, n_train: int):
    """YouTube-VOS 2018/2019 layout: train/ and valid/, each with JPEGImages, Annotations, meta."""
    metas: dict[str, dict] = {"train": {}, "valid": {}}
    for i in range(n):
        split = "train" if i < n_train else "valid"
        vid = f"synth{i:03d}"
        metas[split][vid] = _write_youtube_video(
            YoutubeLayout(root, split), vid, render(i, True), split == "valid"
        )
    for split, videos in metas.items():
        layout = YoutubeLayout(root, split)
        for folder in (layout.frames_root, layout.annotations_root):  # even for an empty split
            folder.mkdir(parents=True, exist_ok=True)
        layout.meta_path.write_text(json.dumps({"videos": videos}, indent=2) + "\n")


def write_dataset(
    out_dir: str | os.PathLike,
    fmt: str,
    num_videos: int,
    num_frames: int,
    size: tuple[int, int],
    num_objects: int,
    seed: int,
    preset: str = "davis",
    num_val: int | None = None,
) -> Path:
    """Write a synthetic dataset in the 'davis' or 'youtube' layout; return its root.

    Video i is drawn from `np.random.default_rng([seed, i])`, so it does not depend on
    num_videos. The last `num_val` videos (None: max(1, round(0.2 * num_videos))) form the
    val / valid split.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if not isinstance(num_videos, numbers.Integral) or num_videos < 1:
        raise ValueError(f"num_videos must be an integer >= 1, got {num_videos!r}")
    if not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if num_val is None:
        num_val = max(1, round(0.2 * num_videos))
    if not isinstance(num_val, numbers.Integral) or not 1 <= num_val <= num_videos:
        raise ValueError(f"num_val must be an integer in 1..num_videos, got {num_val!r}")
    _check_video_args(num_frames, size, num_objects)
    _motion(preset)
    root = Path(out_dir)
    n_train = num_videos - num_val

    def render(i: int, late_start: bool) -> SyntheticVideo:
        return render_video([int(seed), i], num_frames, size, num_objects, late_start, preset)

    writer = _write_davis if fmt == "davis" else _write_youtube
    writer(root, render, int(num_videos), n_train)
    return root
