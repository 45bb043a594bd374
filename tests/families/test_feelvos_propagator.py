"""The FEELVOS family's inference pair: global matching every N frames, local every frame."""

import jax
import numpy as np
import pytest

from vos_jax.data import synthetic
from vos_jax.families import build_model, feelvos

SIZE = (48, 64)


@pytest.fixture(scope="module")
def tiny():
    model, _ = build_model("feelvos", "tiny")
    frames = np.zeros((1, *SIZE, 3), np.uint8)
    variables = jax.jit(model.init, static_argnames="num_objects")(
        jax.random.key(0, impl="unsafe_rbg"), frames, num_objects=4
    )
    return model, variables


@pytest.fixture(scope="module")
def video():
    return synthetic.generate_video(3, 6, SIZE, 3, late_start=False)


def test_global_matching_every_n_frames(tiny, video):
    model, variables = tiny
    frames, masks = video
    new = np.array([[True, True, True, True]])
    none = np.zeros_like(new)
    empty = np.zeros((1, *SIZE), np.int32)
    global_maps = {}
    for every in (1, 2):
        propagator = feelvos.propagator(model, variables, max_objects=3, global_every=every)
        state = propagator.init(frames[:1], masks[:1].astype(np.int32), new)
        maps = []
        for t in (1, 2, 3):
            state, _ = propagator.step(state, frames[t : t + 1], empty, none)
            maps.append(np.asarray(state.global_map))
        global_maps[every] = maps
    # Every frame: a new map each frame. Every 2nd: frame 2 reuses frame 1's, frame 3 refreshes.
    assert not np.array_equal(global_maps[1][0], global_maps[1][1])
    np.testing.assert_array_equal(global_maps[2][0], global_maps[2][1])
    np.testing.assert_array_equal(global_maps[2][2], global_maps[1][2])
