"""The DAVIS 2017 toolkit's evaluation loop, for timing comparisons only.

This mirrors how davis2017-evaluation computes J and F (written here from its documented
algorithm, not copied): masks loaded as float64 [objects, T, H, W] arrays, then for every
(proposal, object) pair and every frame a full-frame boundary map and two full-frame dilations, one
pair at a time, in a single process. It gives the same numbers as vos_jax.metrics (the parity tests
check that against the toolkit's own output); only its cost matters here.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment


def _disk(radius):
    offsets = np.arange(-radius, radius + 1)
    return offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2


def _bmap(seg):
    seg = seg.astype(bool)
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1], s[:-1, :], se[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def _f_measure(fg, gt, void):
    radius = math.ceil(0.008 * np.linalg.norm(fg.shape))
    fg_b, gt_b = _bmap(fg * np.logical_not(void)), _bmap(gt * np.logical_not(void))
    kernel = _disk(radius).astype(np.uint8)
    fg_dil = cv2.dilate(fg_b.astype(np.uint8), kernel)
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), kernel)
    n_fg, n_gt = np.sum(fg_b), np.sum(gt_b)
    if n_fg == 0 and n_gt > 0:
        p, r = 1, 0
    elif n_fg > 0 and n_gt == 0:
        p, r = 0, 1
    elif n_fg == 0 and n_gt == 0:
        p, r = 1, 1
    else:
        p, r = np.sum(fg_b * gt_dil) / float(n_fg), np.sum(gt_b * fg_dil) / float(n_gt)
    return 0 if p + r == 0 else 2 * p * r / (p + r)


def _iou(gt, res, void):
    keep = np.logical_not(void)
    inter = np.sum((res.astype(bool) & gt.astype(bool)) & keep, axis=(-2, -1))
    union = np.sum((res.astype(bool) | gt.astype(bool)) & keep, axis=(-2, -1))
    j = inter / np.maximum(union, 1)
    j[np.isclose(union, 0)] = 1
    return j


def _load(paths):
    first = np.array(Image.open(paths[0]))
    out = np.zeros((len(paths), *first.shape))
    for i, p in enumerate(paths):
        out[i] = np.array(Image.open(p))
    return out


def _split(ids, num):
    return np.arange(1, num + 1)[:, None, None, None] * np.ones((num, *ids.shape)) == ids[None]


def evaluate_sequence(gt_dir: Path, res_dir: Path, task: str):
    gt_paths = sorted(gt_dir.glob("*.png"))
    gt = _load(gt_paths)
    void = gt == 255
    gt[void] = 0
    gt_obj = _split(gt, int(gt[0].max()))
    if task == "semi-supervised":
        gt_obj, void, gt_paths = gt_obj[:, 1:-1], np.zeros_like(void[1:-1]), gt_paths[1:-1]
    res = _load([res_dir / p.name for p in gt_paths])
    res_obj = _split(res, max(int(res.max()), gt_obj.shape[0]))
    n_res, n_gt, n_t = res_obj.shape[0], gt_obj.shape[0], gt_obj.shape[1]
    pairs = [(k, k) for k in range(n_gt)] if task == "semi-supervised" else None
    pairs = pairs or [(r, g) for g in range(n_gt) for r in range(n_res)]
    j, f = np.zeros((n_res, n_gt, n_t)), np.zeros((n_res, n_gt, n_t))
    for r, g in pairs:
        j[r, g] = _iou(gt_obj[g], res_obj[r], void)
        for t in range(n_t):
            f[r, g, t] = _f_measure(res_obj[r, t], gt_obj[g, t], void[t])
    if task == "semi-supervised":
        return j[range(n_gt), range(n_gt)], f[range(n_gt), range(n_gt)]
    rows, cols = linear_sum_assignment(-(j.mean(axis=2) + f.mean(axis=2)) / 2)
    return j[rows, cols], f[rows, cols]
