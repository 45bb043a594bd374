"""The FEELVOS family's inference pair: global matching every N frames, local every frame."""

import numpy as np

from tests.conftest import SIZE
from vos_jax.families import feelvos


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
