"""Throughput measurement: `vos-jax bench` (`infer.py`, `train.py`: one JSON line per run, the
schema of benchmarks/), `device.py` (FLOPs, memory, peaks), and the timers shared with the
benchmarks/ scripts: the streaming step of a propagator, per frame, after compilation."""

from __future__ import annotations

import time

import jax
import numpy as np

from vos_jax.families.propagator import Propagator


def stripes(height: int, width: int, objects: int) -> np.ndarray:
    """[1, H, W] int32 slot ids: one vertical stripe per object (a first mask with every slot)."""
    masks = np.zeros((1, height, width), np.int32)
    for k in range(objects):
        masks[:, :, k * width // objects : (k + 1) * width // objects] = k + 1
    return masks


def time_steps(propagator: Propagator, frame: np.ndarray, frames: int) -> tuple[float, list[float]]:
    """-> (seconds to compile and run init + the first step, seconds of each of `frames` further
    steps) of `propagator` on `frame` [B, H, W, 3] (B videos), starting from a stripe mask of
    every slot."""
    objects, videos = propagator.max_objects, frame.shape[0]
    masks = np.repeat(stripes(*frame.shape[1:3], objects), videos, axis=0)
    new = np.ones((videos, objects + 1), bool)
    none, empty = np.zeros_like(new), np.zeros_like(masks)
    start = time.perf_counter()
    state = jax.block_until_ready(propagator.init(frame, masks, new))
    state, prediction = propagator.step(state, frame, empty, none)
    jax.block_until_ready(prediction)
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(frames):
        start = time.perf_counter()
        state, prediction = propagator.step(state, frame, empty, none)
        jax.block_until_ready(prediction)
        times.append(time.perf_counter() - start)
    return compile_s, times


def time_calls(fn, *args, calls: int = 10) -> list[float]:
    """Seconds of each of `calls` runs of `fn(*args)` after a first (compiling) one."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return times
