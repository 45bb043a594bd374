"""The inference engine (here driving FEELVOS): streaming and scan drivers, per-frame records,
objects that arrive later, one compilation per (model, frame size, max objects)."""

import jax
import numpy as np
import pytest

from tests.conftest import SIZE
from vos_jax.families import feelvos
from vos_jax.families.propagator import Prediction, Propagator
from vos_jax.inference.engine import ObjectSlots, propagate, propagate_clip, propagate_free


def test_streaming_segments_every_frame_with_one_compilation(tiny, video):
    model, variables = tiny
    propagator = feelvos.propagator(model, variables, max_objects=3)
    frames, masks = video
    records = list(propagate(propagator, iter(frames), masks[0]))
    out = [r.labels for r in records]
    assert len(out) == len(frames) and all(o.shape == SIZE and o.dtype == np.uint8 for o in out)
    np.testing.assert_array_equal(out[0], masks[0])  # frame 0 is the given mask
    assert all(set(np.unique(o)) <= {0, 1, 2, 3} for o in out)
    # The record: ids in slot order, a score per object (1 where given), no boxes from FEELVOS.
    assert all(r.ids == (1, 2, 3) and r.scores.shape == (3,) and r.boxes is None for r in records)
    np.testing.assert_array_equal(records[0].scores, 1.0)
    assert all(0.0 < s <= 1.0 for r in records[1:] for s in r.scores)
    # Other videos of the same size with fewer objects (and arbitrary ids) reuse the compilation.
    one_object = np.where(masks[0] == 2, 7, 0).astype(np.uint8)
    out = [r.labels for r in propagate(propagator, iter(frames[:4]), one_object)]
    assert set(np.unique(np.stack(out))) <= {0, 7}
    list(propagate(propagator, iter(frames[2:]), np.zeros(SIZE, np.uint8)))  # no object at all
    assert propagator.step._cache_size() == 1 and propagator.init._cache_size() == 1


def test_scan_driver_matches_the_streaming_driver(tiny, video):
    model, variables = tiny
    propagator = feelvos.propagator(model, variables, max_objects=3)
    frames, masks = video
    streamed = [r.labels for r in propagate(propagator, iter(frames), masks[0])]
    valid = np.array([[True, True, True, True]])
    probs = jax.jit(lambda f, m, v: propagate_clip(propagator, f, m, v))(
        frames[None], masks[:1].astype(np.int32), valid
    )
    assert probs.shape == (1, len(frames) - 1, *SIZE, 4)
    # Frame 1 is the same computation in both drivers (other fusion, other rounding): its
    # probabilities agree tightly. Later frames feed the argmax labels back into local matching,
    # so a near-tie flipped by rounding (an untrained model has many) can spread a little.
    state = propagator.init(frames[None, 0], masks[:1].astype(np.int32), valid)
    _, first = propagator.step(state, frames[None, 1], np.zeros_like(masks[:1]), valid & False)
    np.testing.assert_allclose(np.asarray(probs[0, 0]), np.asarray(first.probs[0]), atol=1e-5)
    scanned = np.argmax(np.asarray(probs[0]), axis=-1)
    agreement = np.mean(scanned == np.stack(streamed[1:]))
    assert agreement > 0.98


def test_objects_arriving_later_are_added(tiny, video):
    model, variables = tiny
    propagator = feelvos.propagator(model, variables, max_objects=3, max_reference_frames=2)
    frames, masks = video
    first = np.where(masks[0] == 1, 1, 0).astype(np.uint8)
    late = np.where(masks[2] == 2, 5, 0).astype(np.uint8)  # id 5 appears at frame 2
    out = [r.labels for r in propagate(propagator, iter(frames), first, {2: late})]
    assert 5 not in out[1]
    np.testing.assert_array_equal(out[2] == 5, late == 5)  # the given mask holds at frame 2
    with pytest.raises(ValueError, match="at most 1 frames with given objects"):
        single = feelvos.propagator(model, variables, max_objects=3, max_reference_frames=1)
        list(propagate(single, iter(frames), first, {2: late}))


def test_bad_inputs_are_refused(tiny, video):
    model, variables = tiny
    propagator = feelvos.propagator(model, variables, max_objects=2)
    frames, masks = video
    with pytest.raises(ValueError, match="max_objects=2"):
        list(propagate(propagator, iter(frames), masks[0]))  # 3 objects
    with pytest.raises(ValueError, match="mask of frame 0"):
        list(propagate(propagator, iter(frames), masks[0][:20]))
    changing = [frames[0], frames[1][:40]]
    with pytest.raises(ValueError, match="frame 1 has shape"):
        list(propagate(propagator, iter(changing), np.zeros(SIZE, np.uint8)))


def _box_tracker(max_objects: int) -> Propagator:
    """A stand-in tracker: each object's box is the previous one shifted by a pixel; scores are
    its own; probs paint the boxes. Shows that a box tracker needs no change in the engine."""
    import jax.numpy as jnp

    def init(frame, masks, new):
        ids = jnp.arange(max_objects + 1)
        inside = masks[..., None] == ids  # [B, H, W, O + 1]
        ys, xs = jnp.arange(masks.shape[1]), jnp.arange(masks.shape[2])
        lo_x = jnp.min(jnp.where(inside.any(1), xs[None, :, None], 10**6), axis=1)
        lo_y = jnp.min(jnp.where(inside.any(2), ys[None, :, None], 10**6), axis=1)
        return jnp.stack([lo_x, lo_y, lo_x + 4, lo_y + 4], -1).astype(jnp.float32)

    def step(boxes, frame, masks, new):
        boxes = boxes + 1.0
        ys, xs = jnp.arange(frame.shape[1]), jnp.arange(frame.shape[2])
        inside = (
            (xs[None, None, :, None] >= boxes[:, None, None, :, 0])
            & (xs[None, None, :, None] < boxes[:, None, None, :, 2])
            & (ys[None, :, None, None] >= boxes[:, None, None, :, 1])
            & (ys[None, :, None, None] < boxes[:, None, None, :, 3])
        )
        probs = jnp.where(inside, 1.0, 0.0).at[..., 0].set(0.5)
        scores = jnp.linspace(0.1, 0.9, max_objects + 1)[None]
        corners = jnp.stack([boxes[..., [0, 1]], boxes[..., [2, 1]], boxes[..., [2, 3]]], -2)
        rotated = jnp.concatenate([corners, boxes[..., None, [0, 3]]], -2)
        return boxes, Prediction(probs, scores, boxes, rotated)

    return Propagator(jax.jit(init), jax.jit(step), max_objects)


def test_a_box_tracker_streams_boxes_and_scores_through_the_engine():
    mask = np.zeros(SIZE, np.uint8)
    mask[10:14, 20:24] = 4  # object id 4 in slot 1
    frames = np.zeros((3, *SIZE, 3), np.uint8)
    records = list(propagate(_box_tracker(2), iter(frames), mask))
    assert records[0].boxes is None and records[0].ids == (4,)
    np.testing.assert_array_equal(records[2].boxes, [[22.0, 12.0, 26.0, 16.0]])
    assert records[2].rotated.shape == (1, 4, 2) and records[2].scores[0] == np.float32(0.5)
    assert records[2].labels[12, 22] == 4 and records[2].labels[0, 0] == 0


def test_object_slots_map_ids_both_ways():
    slots = ObjectSlots(3)
    mask = np.array([[0, 7, 255], [3, 7, 0]], np.uint8)
    np.testing.assert_array_equal(slots.add(mask), [False, True, True, False])
    assert slots.ids == [3, 7]
    np.testing.assert_array_equal(slots.to_slots(mask), [[0, 2, 0], [1, 2, 0]])
    np.testing.assert_array_equal(slots.to_ids(np.array([0, 1, 2])), [0, 3, 7])
    assert not slots.add(mask).any()  # known ids are not added again


def test_propagate_free_needs_an_unsupervised_propagator(tiny):
    with pytest.raises(ValueError, match="unsupervised"):
        next(propagate_free(feelvos.propagator(*tiny, max_objects=2), iter([])))
