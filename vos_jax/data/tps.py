"""Thin-plate spline warps on the host (NumPy + cv2.remap), for the input pipeline's augmentations.

The spline (Bookstein, "Principal warps", TPAMI 1989) is the smooth map with the least bending
energy that sends N control points exactly onto N targets: f(p) = a0 + A p + sum_i w_i U(|p - c_i|)
with U(r) = r^2 log r^2, solved from the (N + 3) x (N + 3) system [[K, P], [P^T, 0]]. MaskTrack
(Khoreva et al., CVPR 2017) and Lucid Data Dreaming (Khoreva et al., IJCV 2019) use it with 5
control points on the object boundary to simulate non-rigid motion of the previous mask / object.

Points are (x, y) pixel coordinates with pixel centres on integers (the cv2 convention).
``tps_warp_map`` gives a *backward* map for ``cv2.remap``: for each output pixel the source pixel.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np


class TpsParams(NamedTuple):
    """A fitted spline: f(p) = affine(q) + sum_i weights_i U(|q - c_i|), q = (p - mean) / scale."""

    centers: np.ndarray  # [N, 2] normalised control points
    weights: np.ndarray  # [N, 2] radial-basis weights (for x and y outputs)
    affine: np.ndarray  # [3, 2] rows: constant, x coefficient, y coefficient
    mean: np.ndarray  # [2] normalisation of the inputs (the fit is badly conditioned in raw pixels)
    scale: float


def _kernel(sq_dist: np.ndarray) -> np.ndarray:
    """U(r) = r^2 log r^2 written on squared distances, with U(0) = 0."""
    return sq_dist * np.log(np.maximum(sq_dist, 1e-30))


def tps_fit(src: np.ndarray, dst: np.ndarray, regularization: float = 0.0) -> TpsParams:
    """Fits the spline f with f(src_i) = dst_i (exactly when regularization == 0).

    src, dst: [N, 2] (x, y). N >= 3 non-collinear points determine the affine part; degenerate
    configurations (collinear or repeated points) get the least-squares (minimum-norm) solution.
    """
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    n = len(src)
    # Normalising only changes the affine part: the r^2 log s^2 term a uniform scaling adds is
    # quadratic, and the side conditions sum w = 0, sum w c = 0 make it a constant.
    mean = src.mean(axis=0)
    scale = float(max(src.std(axis=0).max(), 1e-6))
    q = (src - mean) / scale
    sq = ((q[:, None, :] - q[None, :, :]) ** 2).sum(-1)
    p = np.concatenate([np.ones((n, 1)), q], axis=1)  # [N, 3]
    lhs = np.zeros((n + 3, n + 3))
    lhs[:n, :n] = _kernel(sq) + regularization * np.eye(n)
    lhs[:n, n:] = p
    lhs[n:, :n] = p.T
    rhs = np.concatenate([dst, np.zeros((3, 2))], axis=0)
    sol = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    return TpsParams(q, sol[:n], sol[n:], mean, scale)


def tps_apply(params: TpsParams, points: np.ndarray) -> np.ndarray:
    """Evaluates f at points [..., 2] (float64)."""
    pts = np.asarray(points, np.float64)
    q = (pts.reshape(-1, 2) - params.mean) / params.scale
    sq = ((q[:, None, :] - params.centers[None, :, :]) ** 2).sum(-1)
    out = params.affine[0] + q @ params.affine[1:] + _kernel(sq) @ params.weights
    return out.reshape(pts.shape)


def _eval_grid(params: TpsParams, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f on the grid xs x ys in float32, one [H, W] plane per control point (vectorised, no loop
    over pixels; N is small, so the loop over control points is cheap)."""
    qx = ((xs - params.mean[0]) / params.scale).astype(np.float32)[None, :]  # [1, W]
    qy = ((ys - params.mean[1]) / params.scale).astype(np.float32)[:, None]  # [H, 1]
    a = params.affine.astype(np.float32)
    map_x = a[0, 0] + a[1, 0] * qx + a[2, 0] * qy
    map_y = a[0, 1] + a[1, 1] * qx + a[2, 1] * qy
    for (cx, cy), (wx, wy) in zip(params.centers, params.weights, strict=True):
        u = _kernel((qx - np.float32(cx)) ** 2 + (qy - np.float32(cy)) ** 2)
        map_x = map_x + np.float32(wx) * u
        map_y = map_y + np.float32(wy) * u
    return map_x.astype(np.float32), map_y.astype(np.float32)


def tps_warp_map(
    params: TpsParams, height: int, width: int, grid_step: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """f at every pixel (x, y) of an [H, W] image: (map_x, map_y) float32 [H, W] for cv2.remap.

    grid_step > 1 evaluates f on every grid_step-th pixel and upsamples bilinearly (cv2.resize);
    the spline is smooth, so the error is small (well under a pixel for augmentation-size warps),
    but control points are then no longer hit exactly.
    """
    if grid_step <= 1:
        return _eval_grid(params, np.arange(width), np.arange(height))
    gw, gh = -(-(width - 1) // grid_step) + 1, -(-(height - 1) // grid_step) + 1
    map_x, map_y = _eval_grid(params, np.arange(gw) * grid_step, np.arange(gh) * grid_step)
    return _upsample(map_x, grid_step, height, width), _upsample(map_y, grid_step, height, width)


def _upsample(grid: np.ndarray, step: int, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling where grid node (i, j) lands exactly on pixel (i * step, j * step)."""
    # With WARP_INVERSE_MAP, output pixel x samples the grid at x / step: nodes stay aligned
    # (cv2.resize would align pixel-area centres instead and shift the map by a fraction of a step).
    m = np.array([[1.0 / step, 0.0, 0.0], [0.0, 1.0 / step, 0.0]])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(grid, m, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def tps_warp(
    image: np.ndarray,
    src_points: np.ndarray,
    dst_points: np.ndarray,
    interpolation: int = cv2.INTER_LINEAR,
    border_value: float | tuple[float, ...] = 0,
    grid_step: int = 1,
) -> np.ndarray:
    """Warps image [H, W] or [H, W, C] so that the content at src_points moves to dst_points.

    Backward mapping: fit g with g(dst_i) = src_i and sample the image at g(pixel). Use
    interpolation=cv2.INTER_NEAREST for id masks (never invents ids).
    """
    height, width = image.shape[:2]
    map_x, map_y = tps_warp_map(tps_fit(dst_points, src_points), height, width, grid_step)
    return cv2.remap(
        image,
        map_x,
        map_y,
        interpolation,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border_value,
    )


def boundary_control_points(
    obj: np.ndarray, num_points: int, move: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """num_points control points spread evenly along the outer boundary of the binary mask obj
    [H, W] (random start), and targets moved uniformly by +-move of its box size (MaskTrack).

    Evenly spaced, not independent draws: clustered points would let the spline's affine part
    extrapolate wildly over the rest of the object.
    """
    contours, _ = cv2.findContours(obj, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    boundary = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64)
    n = len(boundary)
    idx = (rng.integers(n) + np.arange(num_points) * n // num_points) % n
    src = boundary[idx]
    size = boundary.max(axis=0) - boundary.min(axis=0) + 1
    dst = src + rng.uniform(-move, move, (num_points, 2)) * size
    return src, dst
