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
    # Frame 3 refreshed: every frame's map, up to rounding (two programs), not frame 2's.
    np.testing.assert_allclose(global_maps[2][2], global_maps[1][2], rtol=1e-5, atol=1e-9)
    assert not np.allclose(global_maps[2][2], global_maps[2][1], rtol=1e-5, atol=1e-9)


def test_a_float64_model_propagates(video):
    """model.dtype=float64 (the trainer's checks, with validation on) once failed in the engine's
    lax.cond: the global map refreshed in float64, the kept one float32."""
    import jax

    from vos_jax.families import build_model
    from vos_jax.inference.engine import propagate

    frames, masks = video
    with jax.enable_x64(True):
        model, _ = build_model("feelvos", "tiny", dtype=jax.numpy.float64)
        variables = jax.jit(model.init, static_argnames="num_objects")(
            jax.random.key(0, impl="unsafe_rbg"), frames[:1], num_objects=4
        )
        propagator = feelvos.propagator(model, variables, max_objects=3, global_every=2)
        results = list(propagate(propagator, frames[:4], masks[0]))
    assert len(results) == 4 and results[-1].labels.shape == SIZE
