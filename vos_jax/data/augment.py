"""Host-side augmentations for the input pipeline (NumPy + OpenCV, run in grain worker processes).

- ``random_scale_crop`` / ``random_flip`` / ``photometric_jitter``: clip augmentation as in
  Voigtlaender et al. (CVPR 2019), one transform shared by all T frames of a sample.
- ``simulate_prior``: the previous-mask simulation of MaskTrack (Perazzi, Khoreva et al., CVPR
  2017) and Google's mobile segmentation (2018): per object an empty, affine-warped or
  thin-plate-spline-warped ground truth, dilated by a disk.
- ``lucid_dream`` / ``hsv_illumination``: Lucid Data Dreaming (Khoreva et al., IJCV 2019): inpaint
  the background, deform, rescale and move each object, change the illumination in HSV.
- ``static_pseudo_video``: a short clip from one annotated image by a smooth random affine walk.

Frames are uint8 RGB [T, H, W, 3] or [H, W, 3]; masks uint8 id maps [T, H, W] or [H, W] with 0
background, 1..K objects, 255 void. Masks are warped with nearest-neighbour interpolation, so no
id is invented. Every random choice comes from the ``rng`` argument: same state, same output.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from vos_jax.data.tps import boundary_control_points, tps_warp
from vos_jax.io.masks import VOID_ID as VOID  # noqa: F401  (augment.VOID, for callers)
from vos_jax.io.masks import object_ids

PRIOR_MODES = ("empty", "affine", "tps")
_TPS_GRID = 4  # TPS maps evaluated every 4 px, then upsampled: <= 0.4 px off, ~5x faster
_LUMA = np.array([0.299, 0.587, 0.114])
_RGB2YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


@functools.lru_cache(maxsize=16)
def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


# ----------------------------------------------------------------------------- clip augmentation


def random_scale_crop(
    frames: np.ndarray,
    masks: np.ndarray,
    out_size: tuple[int, int],
    rng: np.random.Generator,
    scale_range: tuple[float, float] = (1.0, 1.3),
) -> tuple[np.ndarray, np.ndarray]:
    """Random rescale + crop (Voigtlaender et al.): frames [T, H, W, 3] -> [T, h, w, 3], masks
    [T, H, W] -> [T, h, w]. Scale 1.0 is the smallest resize that covers out_size (the shorter
    side fits)."""
    _, height, width = masks.shape
    out_h, out_w = out_size
    scale = max(out_h / height, out_w / width) * rng.uniform(*scale_range)
    # Crop offsets in the resized frame; negative (zero padding) only when scale_range goes < 1.
    slack_y, slack_x = height * scale - out_h, width * scale - out_w
    off_y = rng.uniform(min(slack_y, 0.0), max(slack_y, 0.0))
    off_x = rng.uniform(min(slack_x, 0.0), max(slack_x, 0.0))
    # Resize and crop as one affine map (pixel centres on integers, like cv2.resize), so each frame
    # is interpolated once: x_out = scale * (x_in + 0.5) - 0.5 - off_x.
    mat = np.array(
        [[scale, 0.0, 0.5 * scale - 0.5 - off_x], [0.0, scale, 0.5 * scale - 0.5 - off_y]]
    )
    size, edge = (out_w, out_h), cv2.BORDER_REPLICATE
    # Replicate, as cv2.resize does: a crop at offset 0 samples up to half a pixel beyond the outer
    # pixel centres, and a constant border would darken the first row/column.
    out_frames = np.stack([_warp(f, mat, size, cv2.INTER_LINEAR, edge) for f in frames])
    out_masks = np.stack([_warp(m, mat, size, cv2.INTER_NEAREST, edge) for m in masks])
    if min(slack_y, slack_x) < 0:  # the frame is smaller than the crop: zero padding outside it
        inside = _warp(np.ones((height, width), np.uint8), mat, size, cv2.INTER_NEAREST)
        out_frames *= inside[None, :, :, None]
        out_masks *= inside[None]
    return out_frames, out_masks


def _warp(
    image: np.ndarray,
    mat: np.ndarray,
    size: tuple[int, int],
    interp: int,
    border: int = cv2.BORDER_CONSTANT,
) -> np.ndarray:
    return cv2.warpAffine(image, mat, size, flags=interp, borderMode=border)


def random_flip(
    frames: np.ndarray, masks: np.ndarray, rng: np.random.Generator, p: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal flip of the whole sample with probability p (frames [..., H, W, 3], masks
    [..., H, W])."""
    if rng.random() < p:
        return _hflip(frames, 3), _hflip(masks, 2)
    return frames, masks


def _hflip(x: np.ndarray, image_ndim: int) -> np.ndarray:
    """cv2.flip per image: ~2x faster than copying a negative-stride NumPy view."""
    images = x.reshape(-1, *x.shape[x.ndim - image_ndim :])
    return np.stack([cv2.flip(image, 1) for image in images]).reshape(x.shape)


def photometric_jitter(
    frames: np.ndarray,
    rng: np.random.Generator,
    brightness: float = 0.2,
    contrast: float = 0.2,
    saturation: float = 0.2,
    hue: float = 0.02,
) -> np.ndarray:
    """torchvision-style colour jitter, the same for all frames: uint8 [..., 3] in and out.

    Brightness, contrast, saturation and hue (a rotation of the chroma plane in YIQ, which keeps
    luma; hue is a fraction of the full circle) are all affine in RGB, so the four steps, in a
    random order, fold into one 3x4 matrix applied by a single cv2.transform (rounds, saturates).
    Unlike torchvision, nothing is clipped between the steps.
    """
    order = rng.permutation(4)
    b, c, s = (rng.uniform(1 - x, 1 + x) for x in (brightness, contrast, saturation))
    theta = rng.uniform(-hue, hue) * 2 * np.pi
    mean_rgb = frames[..., ::4, ::4, :].reshape(-1, 3).mean(axis=0)  # contrast pivots on the mean
    mat = np.eye(4)
    for op in order:
        if op == 0:
            step = np.diag([b, b, b, 1.0])
        elif op == 1:
            gray = _LUMA @ (mat @ np.append(mean_rgb, 1.0))[:3]  # mean luma after earlier steps
            step = np.diag([c, c, c, 1.0])
            step[:3, 3] = (1 - c) * gray
        elif op == 2:
            step = np.eye(4)
            step[:3, :3] = s * np.eye(3) + (1 - s) * np.outer(np.ones(3), _LUMA)
        else:
            cos, sin = np.cos(theta), np.sin(theta)
            rot = np.array([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])
            step = np.eye(4)
            step[:3, :3] = np.linalg.inv(_RGB2YIQ) @ rot @ _RGB2YIQ
        mat = step @ mat
    flat = frames.reshape(-1, frames.shape[-2], 3)
    return cv2.transform(flat, mat[:3]).reshape(frames.shape)


# ----------------------------------------------------------------------------- previous-mask prior


def simulate_prior(
    mask: np.ndarray,
    rng: np.random.Generator,
    probs: dict[str, float] | None = None,
    affine_scale: float = 0.05,
    affine_shift: float = 0.10,
    affine_rotate: float = 5.0,
    tps_points: int = 5,
    tps_move: float = 0.10,
    dilate_radius: int = 5,
) -> np.ndarray:
    """A simulated previous-frame mask [H, W] for the id map mask [H, W] (MaskTrack, Sec. 3.1).

    Each object draws a mode: "empty" (no prior: first frame, an object entering), "affine" (scale
    +-affine_scale, shift +-affine_shift of its box size, rotation +-affine_rotate degrees) or
    "tps" (tps_points boundary points moved +-tps_move of its box size); then a disk dilation.
    Objects are pasted in id order, so where dilated objects overlap the larger id wins. Void and
    absent objects never appear.
    """
    probs = {"empty": 0.1, "affine": 0.45, "tps": 0.45} if probs is None else probs
    if set(probs) - set(PRIOR_MODES):
        raise ValueError(f"unknown prior modes {set(probs) - set(PRIOR_MODES)}")
    p = np.array([probs.get(m, 0.0) for m in PRIOR_MODES], np.float64)
    prior = np.zeros(mask.shape, np.uint8)
    for k in object_ids(mask):
        mode = PRIOR_MODES[rng.choice(3, p=p / p.sum())]
        if mode == "empty":
            continue
        obj = (mask == k).view(np.uint8)
        x, y, w, h = cv2.boundingRect(obj)
        # Work in a window around the object: the warps move it by well under half its size.
        y0, y1, x0, x1 = _expand((x, y, w, h), max(w, h) // 2 + dilate_radius + 2, mask.shape)
        roi = obj[y0:y1, x0:x1]
        size = np.array([w, h], np.float64)
        if mode == "affine":
            centre = (x - x0 + (w - 1) / 2, y - y0 + (h - 1) / 2)
            mat = cv2.getRotationMatrix2D(
                centre,
                rng.uniform(-affine_rotate, affine_rotate),
                1.0 + rng.uniform(-affine_scale, affine_scale),
            )
            mat[:, 2] += rng.uniform(-affine_shift, affine_shift, 2) * size
            warped = _warp(roi, mat, (x1 - x0, y1 - y0), cv2.INTER_NEAREST)
        else:
            src, dst = boundary_control_points(roi, tps_points, tps_move, rng)
            warped = tps_warp(roi, src, dst, cv2.INTER_NEAREST, 0, grid_step=_TPS_GRID)
        if dilate_radius > 0:
            warped = cv2.dilate(warped, _disk(dilate_radius))
        _paste(prior[y0:y1, x0:x1], np.full_like(warped, k), warped)
    return prior


def _paste(dst: np.ndarray, src: np.ndarray, where: np.ndarray) -> np.ndarray:
    """dst[where != 0] = src[where != 0] in place; cv2.copyTo is ~50x faster than bool indexing."""
    cv2.copyTo(src, where, dst)
    return dst


def _expand(box: tuple[int, int, int, int], margin: int, shape: tuple[int, ...]) -> tuple:
    x, y, w, h = box
    return (
        max(y - margin, 0),
        min(y + h + margin, shape[0]),
        max(x - margin, 0),
        min(x + w + margin, shape[1]),
    )


# ----------------------------------------------------------------------------- lucid data dreaming


def lucid_dream(
    frame: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator,
    tps_move: float = 0.05,
    scale_range: tuple[float, float] = (0.85, 1.15),
    hsv_power: tuple[float, float] = (0.8, 1.2),
    hsv_gain: tuple[float, float] = (0.97, 1.03),
    hsv_offset: float = 0.05,
    prior_dilate: int = 5,
    inpaint_max_side: int = 160,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A new training frame from an annotated one (Lucid Data Dreaming, Sec. 3).

    frame [H, W, 3], mask [H, W] -> (frame' [H, W, 3], mask' [H, W] ids, prior [H, W] ids). The
    objects (and void) are cut out and the hole inpainted; each object is TPS-deformed (5 boundary
    points, +-tps_move of its size), rescaled by scale_range and pasted, fully inside the frame,
    at a random place, in id order; then ``hsv_illumination``. mask' has no void (the void pixels
    were inpainted as background). prior is mask' TPS-warped again and dilated (the paper's
    previous-mask simulation).
    """
    ids = object_ids(mask)
    region = (mask != 0).view(np.uint8)
    dreamt = inpaint_background(frame, region, inpaint_max_side) if region.any() else frame.copy()
    sprites = [
        _dream_sprite(frame, (mask == k).view(np.uint8), rng, tps_move, scale_range) for k in ids
    ]
    tops, new_mask = _place_sprites(sprites, ids, mask.shape, rng)
    for (rgb, alpha), (top, left) in zip(sprites, tops, strict=True):
        h, w = alpha.shape
        _paste(dreamt[top : top + h, left : left + w], rgb, alpha)
    dreamt = hsv_illumination(dreamt, rng, hsv_power, hsv_gain, hsv_offset)
    prior = simulate_prior(
        new_mask, rng, probs={"tps": 1.0}, tps_move=tps_move, dilate_radius=prior_dilate
    )
    return dreamt, new_mask, prior


def inpaint_background(
    frame: np.ndarray, region: np.ndarray, max_side: int = 160, dilate_radius: int = 3
) -> np.ndarray:
    """frame [H, W, 3] with region [H, W] (non-zero = fill) inpainted by Telea's method.

    The region is dilated first (boundary pixels carry object colour). Telea's cost grows with the
    hole's area, so the fill runs at reduced resolution (longer side max_side) and is upsampled;
    pixels outside the region are kept exactly. A hole is only smooth background anyway.
    """
    height, width = region.shape
    region = cv2.dilate(region.astype(np.uint8), _disk(dilate_radius))
    factor = min(1.0, max_side / max(height, width))
    small, small_region = frame, region
    if factor < 1.0:
        size = (max(round(width * factor), 1), max(round(height * factor), 1))
        small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        # A low-res pixel is a hole if any of its full-res pixels is: no object colour leaks in.
        small_region = (cv2.resize(region, size, interpolation=cv2.INTER_AREA) > 0).view(np.uint8)
    filled = cv2.inpaint(small, small_region, 3, cv2.INPAINT_TELEA)
    if factor < 1.0:
        filled = cv2.resize(filled, (width, height), interpolation=cv2.INTER_LINEAR)
    return _paste(frame.copy(), filled, region)


def _dream_sprite(
    frame: np.ndarray,
    obj: np.ndarray,
    rng: np.random.Generator,
    tps_move: float,
    scale_range: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """One object cut out, TPS-deformed and rescaled: (rgb [h, w, 3], alpha [h, w] 0/1), h <= H
    and w <= W so that it can be pasted fully inside the frame."""
    height, width = obj.shape
    x, y, w, h = cv2.boundingRect(obj)
    y0, y1, x0, x1 = _expand((x, y, w, h), int(np.ceil(2 * tps_move * max(w, h))) + 2, obj.shape)
    rgb, alpha = frame[y0:y1, x0:x1], obj[y0:y1, x0:x1]
    src, dst = boundary_control_points(alpha, 5, tps_move, rng)
    warped_rgb = tps_warp(rgb, src, dst, cv2.INTER_LINEAR, 0, grid_step=_TPS_GRID)
    warped_alpha = tps_warp(alpha, src, dst, cv2.INTER_NEAREST, 0, grid_step=_TPS_GRID)
    if warped_alpha.any():  # a sliver of an object can vanish under the warp: keep it unwarped
        rgb, alpha = warped_rgb, warped_alpha
    bx, by, bw, bh = cv2.boundingRect(alpha)
    rgb, alpha = rgb[by : by + bh, bx : bx + bw], alpha[by : by + bh, bx : bx + bw]
    scale = min(rng.uniform(*scale_range), height / bh, width / bw)
    size = (min(max(round(bw * scale), 1), width), min(max(round(bh * scale), 1), height))
    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
    alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_NEAREST)
    return rgb, alpha


def _place_sprites(
    sprites: list[tuple[np.ndarray, np.ndarray]],
    ids: np.ndarray,
    shape: tuple[int, ...],
    rng: np.random.Generator,
    attempts: int = 10,
    min_visible: float = 0.25,
) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Random top-left corners keeping each sprite inside the frame, and the composited id map.

    Re-draws (up to `attempts` times) while a later object hides more than 1 - min_visible of an
    earlier one, so that every id stays visible.
    """
    for _ in range(attempts):
        tops = [
            (
                int(rng.integers(shape[0] - a.shape[0] + 1)),
                int(rng.integers(shape[1] - a.shape[1] + 1)),
            )
            for _, a in sprites
        ]
        labels = np.zeros(shape, np.uint8)
        for k, (_, alpha), (top, left) in zip(ids, sprites, tops, strict=True):
            h, w = alpha.shape
            _paste(labels[top : top + h, left : left + w], np.full_like(alpha, k), alpha)
        visible = np.bincount(labels.ravel(), minlength=256)
        if all(visible[k] >= min_visible * a.sum() for k, (_, a) in zip(ids, sprites, strict=True)):
            break
    return tops, labels


def hsv_illumination(
    frame: np.ndarray,
    rng: np.random.Generator,
    power: tuple[float, float] = (0.8, 1.2),
    gain: tuple[float, float] = (0.97, 1.03),
    offset: float = 0.05,
) -> np.ndarray:
    """Lucid Data Dreaming's illumination change: S and V (in [0, 1]) each become
    gain * x ** power + offset; hue unchanged. uint8 [..., 3] RGB in and out.

    Runs as a 256-entry lookup table on uint8 HSV: ~4x cheaper than float HSV, at the price of
    the uint8 round trip's quantisation (hue in 1.4 degree steps; mean RGB change < 1 level).
    """
    x = np.arange(256) / 255.0
    lut = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)  # [256, 3], H identity
    for channel in (1, 2):
        curve = rng.uniform(*gain) * x ** rng.uniform(*power) + rng.uniform(-offset, offset)
        lut[:, channel] = np.round(np.clip(curve, 0.0, 1.0) * 255.0).astype(np.uint8)
    flat = frame.reshape(-1, frame.shape[-2], 3)
    hsv = cv2.LUT(cv2.cvtColor(flat, cv2.COLOR_RGB2HSV_FULL), lut[:, None, :])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL).reshape(frame.shape)


# ----------------------------------------------------------------------------- pseudo video


def static_pseudo_video(
    frame: np.ndarray,
    mask: np.ndarray,
    num_frames: int,
    rng: np.random.Generator,
    lucid: bool = False,
    step: tuple[float, float, float] = (0.01, 1.0, 0.01),
    limit: tuple[float, float, float] = (0.15, 15.0, 0.15),
    momentum: float = 0.8,
) -> tuple[np.ndarray, np.ndarray]:
    """A clip (frames [T, H, W, 3], masks [T, H, W]) from one annotated image, as in MaskTrack's and
    Lucid Data Dreaming's training from static images.

    Frame 0 is the image (or, with lucid=True, a ``lucid_dream`` of it). Then the camera pose
    (scale change, rotation in degrees, shift as a fraction of the frame) follows a smooth random
    walk: velocity = momentum * velocity + N(0, step), pose clipped to +-limit. Each frame warps
    frame 0 once (no blur accumulates). A step that would push an object fully out of view is
    re-drawn; after 5 failures the camera holds still, so every frame keeps every id.
    """
    if lucid:
        frame, mask, _ = lucid_dream(frame, mask, rng)
    height, width = mask.shape
    ids = object_ids(mask)
    centre = ((width - 1) / 2, (height - 1) / 2)
    sigma = np.array([step[0], step[1], step[2] * width, step[2] * height])
    bound = np.array([limit[0], limit[1], limit[2] * width, limit[2] * height])
    pose, velocity = np.zeros(4), np.zeros(4)
    frames, masks = [frame], [mask]
    for _ in range(num_frames - 1):
        for _attempt in range(5):
            new_velocity = momentum * velocity + rng.normal(size=4) * sigma
            new_pose = np.clip(pose + new_velocity, -bound, bound)
            mat = cv2.getRotationMatrix2D(centre, new_pose[1], 1.0 + new_pose[0])
            mat[:, 2] += new_pose[2:]
            new_mask = _warp(mask, mat, (width, height), cv2.INTER_NEAREST)
            if np.array_equal(object_ids(new_mask), ids):
                pose, velocity = new_pose, new_velocity
                frames.append(_warp(frame, mat, (width, height), cv2.INTER_LINEAR))
                masks.append(new_mask)
                break
        else:
            velocity = np.zeros(4)
            frames.append(frames[-1])
            masks.append(masks[-1])
    return np.stack(frames), np.stack(masks)
