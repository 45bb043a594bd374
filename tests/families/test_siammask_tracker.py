"""The SiamMask tracker (families/siammask.py): the official tracker frame by frame, and many
targets of many videos in one compiled call, each as if tracked alone.

The parity fixture (`SIAMMASK_TRACKER_FIXTURE`, default ../shared/fixtures/siammask_tracker.npz;
read its `about`) holds real DAVIS frames and what the official `siamese_init` / `siamese_track`
(DAVIS settings, mask and refine on) computed from them with stand-in weights: positions,
sizes, scores, rotated boxes and the pasted mask probabilities.
"""

import os
from pathlib import Path

import flax
import jax
import numpy as np
import pytest

from tests.models.test_siammask_parity import stand_in_state_dict
from tests.shared_data import DAVIS_MINI, shared_path
from vos_jax.convert.siammask import import_siammask
from vos_jax.families import build_model
from vos_jax.families import siammask as family
from vos_jax.io.masks import read_mask
from vos_jax.models.layers import BN_MOMENTUM
from vos_jax.models.siammask import SiamMask

SEG_THR = 0.35
FLOAT16_STEP = 2.0**-11  # the fixture's masks are float16: 0.35 is stored within 1.2e-4


def fixture_path() -> Path:
    if os.environ.get("SIAMMASK_TRACKER_FIXTURE"):
        return Path(os.environ["SIAMMASK_TRACKER_FIXTURE"])
    return shared_path("fixtures/siammask_tracker.npz")


def box_mask(shape, x, y, w, h, slot=1, into=None):
    """A mask whose bounding rectangle is (x, y, w, h) (integers)."""
    mask = np.zeros(shape, np.int32) if into is None else into
    mask[y : y + h, x : x + w] = slot
    return mask


@pytest.fixture(scope="module")
def official():
    path = fixture_path()
    tracker = dict(np.load(path))
    weights = path.parent / str(tracker["weights_from"])
    parity = dict(np.load(weights if weights.exists() else shared_path("fixtures/" + weights.name)))
    variant, overrides, variables = import_siammask(stand_in_state_dict(parity, tracker))
    return tracker, SiamMask.variant(variant, **overrides), variables


def test_tracks_as_the_official_tracker(official):
    tracker, model, variables = official
    frames = tracker["frames"][..., ::-1]  # the fixture holds BGR (cv2.imread); we take RGB
    (cx, cy), (w, h) = tracker["init_pos"], tracker["init_sz"]
    first = box_mask(frames.shape[1:3], int(cx - w / 2), int(cy - h / 2), int(w), int(h))
    propagator = family.propagator(model, variables, max_objects=2)
    new = np.array([[True, True, False]])
    state = propagator.init(frames[:1], first[None], new)
    np.testing.assert_allclose(state.pos[0, 0], tracker["init_pos"])  # boundingRect -> centre
    none, empty = np.zeros_like(new), np.zeros_like(first)[None]
    for t in range(1, len(frames)):
        state, prediction = propagator.step(state, frames[t : t + 1], empty, none)
        i = t - 1
        np.testing.assert_allclose(state.pos[0, 0], tracker["target_pos"][i], atol=0.05)
        np.testing.assert_allclose(state.size[0, 0], tracker["target_sz"][i], atol=0.05)
        np.testing.assert_allclose(prediction.scores[0, 1], tracker["score"][i], atol=1e-4)
        np.testing.assert_allclose(prediction.rotated[0, 1], tracker["polygon"][i], atol=0.5)
        x0, y0 = tracker["target_pos"][i] - tracker["target_sz"][i] / 2
        np.testing.assert_allclose(prediction.boxes[0, 1, :2], [x0, y0], atol=0.05)
        probability = np.asarray(prediction.probs[0, ..., 1])
        want = tracker["mask_prob"][i].astype(np.float32)
        np.testing.assert_allclose(probability, want, atol=1e-3)
        decided = np.abs(want - SEG_THR) > FLOAT16_STEP  # away from the stored threshold
        assert np.array_equal((probability > SEG_THR)[decided], (want > SEG_THR)[decided])
        # The labels: the target where its probability passes seg_thr, else background.
        labels = np.asarray(prediction.probs[0]).argmax(-1)
        assert np.array_equal((labels == 1)[decided], (want > SEG_THR)[decided])


# ----------------------------------------------------------------------- many targets at once

T = 4  # frames


@pytest.fixture(scope="module")
def tiny(dog):
    """The tiny model, random weights, BatchNorm statistics calibrated on crops of the dog (as
    the official fixtures are): activations of order 1, so that float32 rounding stays at its
    own scale (uncalibrated, the 0..255 inputs grow activations to 1e5)."""
    model, _ = build_model("siammask", "tiny")
    variables = family.init_variables(model, jax.random.key(3), {})
    frames, _ = dog
    z = jax.image.resize(
        frames[:2, 100:400, 200:500].astype(np.float32), (2, 127, 127, 3), "linear"
    )
    x = jax.image.resize(frames[:2, :, 100:580].astype(np.float32), (2, 255, 255, 3), "linear")
    _, updated = model.apply(variables, z, x, True, mutable=["batch_stats"])
    # One train-mode pass moved each running statistic 1 - momentum of the way from its initial
    # value (mean 0, variance 1) to the batch's: solve for the batch's.
    m = 1 - BN_MOMENTUM
    batch = {
        "mean": lambda new: new / m,
        "var": lambda new: (new - BN_MOMENTUM) / m,
    }
    stats = flax.traverse_util.flatten_dict(updated["batch_stats"])
    stats = {k: batch[k[-1]](v) for k, v in stats.items()}
    return model, {**variables, "batch_stats": flax.traverse_util.unflatten_dict(stats)}


@pytest.fixture(scope="module")
def dog():
    root = shared_path(DAVIS_MINI) / "DAVIS"
    frames = [
        np.asarray(__import__("PIL.Image").Image.open(p).convert("RGB"))
        for p in sorted((root / "JPEGImages/480p/dog").glob("*.jpg"))[:T]
    ]
    return np.stack(frames), read_mask(root / "Annotations/480p/dog/00000.png")


def targets_mask(gt):
    """3 targets: the dog (its mask) and two background boxes, one overlapping it."""
    mask = np.where(gt > 0, 1, 0).astype(np.int32)
    box_mask(mask.shape, 600, 40, 120, 90, slot=2, into=mask)
    box_mask(mask.shape, 30, 300, 200, 150, slot=3, into=mask)
    return mask


def run(propagator, frames, first, later=None):
    """Steps frames [B, T, H, W, 3] from masks [B, H, W] (slot ids), later arrivals
    {t: masks}; -> list of predictions of frames 1.."""
    slots = propagator.max_objects
    new = np.zeros((len(first), slots + 1), bool)
    for b, m in enumerate(first):
        new[b, np.unique(m)] = True
    new[:, 0] = True
    state = propagator.init(frames[:, 0], first, new)
    out = []
    for t in range(1, frames.shape[1]):
        masks = (later or {}).get(t, np.zeros_like(first))
        arriving = np.zeros_like(new)
        for b, m in enumerate(masks):
            arriving[b, np.unique(m[m > 0])] = True
        state, prediction = propagator.step(state, frames[:, t], masks, arriving)
        out.append(jax.tree.map(np.asarray, prediction))
    return out


def test_many_targets_equal_each_target_alone(tiny, dog):
    """Each target's outputs do not depend on the other targets: equal to a run of that target
    alone, in the same program (slot count 4) and in a single-slot program (1e-5, the issue's
    bound: float32 rounding of another program)."""
    model, variables = tiny
    frames, gt = dog
    mask = targets_mask(gt)
    many = family.propagator(model, variables, max_objects=4)
    together = run(many, frames[None], mask[None])
    one = family.propagator(model, variables, max_objects=1)
    for slot in (1, 2, 3):
        alone = run(many, frames[None], np.where(mask == slot, slot, 0)[None])
        single = run(one, frames[None], np.where(mask == slot, 1, 0)[None])
        for a, b, c in zip(together, alone, single, strict=True):
            np.testing.assert_allclose(a.probs[0, ..., slot], b.probs[0, ..., slot], atol=1e-6)
            np.testing.assert_allclose(a.scores[0, slot], b.scores[0, slot], atol=1e-6)
            np.testing.assert_allclose(a.boxes[0, slot], b.boxes[0, slot], atol=1e-4)
            np.testing.assert_allclose(a.rotated[0, slot], b.rotated[0, slot], atol=1e-4)
            np.testing.assert_allclose(a.probs[0, ..., slot], c.probs[0, ..., 1], atol=1e-5)
            np.testing.assert_allclose(a.scores[0, slot], c.scores[0, 1], atol=1e-5)
            np.testing.assert_allclose(a.boxes[0, slot], c.boxes[0, 1], atol=1e-3)
    # The unused slot stays out of the labels.
    assert np.all(together[-1].probs[0, ..., 4] == -1)
    # One compilation for every frame and for 1 or 3 targets of the same slot count.
    assert many.step._cache_size() == 1 and many.init._cache_size() == 1


def test_videos_in_a_batch_and_late_targets_equal_their_own_runs(tiny, dog):
    model, variables = tiny
    frames, gt = dog
    mask = targets_mask(gt)
    propagator = family.propagator(model, variables, max_objects=3)
    flipped = frames[:, :, ::-1].copy()
    late = {2: np.where(mask == 3, 3, 0)[None].repeat(2, 0)}  # target 3 starts at frame 2
    late[2][1] = 0
    first = np.stack([np.where(mask == 3, 0, mask), mask[:, ::-1]])
    batch = run(propagator, np.stack([frames, flipped]), first, late)
    video0 = run(propagator, frames[None], first[:1], {2: late[2][:1]})
    video1 = run(propagator, flipped[None], first[1:])
    for t, (a, b, c) in enumerate(zip(batch, video0, video1, strict=True)):
        np.testing.assert_allclose(a.probs[0], b.probs[0], atol=1e-5)
        np.testing.assert_allclose(a.probs[1], c.probs[0], atol=1e-5)
        if t == 0:  # before its frame, target 3 of video 0 is not there
            assert np.all(a.probs[0, ..., 3] == -1)
    # From frame 2 it is tracked as if it had started alone in that frame.
    alone = run(
        family.propagator(model, variables, max_objects=1),
        frames[None, 2:],
        np.where(mask == 3, 1, 0)[None],
    )
    for a, b in zip(batch[2:], alone, strict=True):
        np.testing.assert_allclose(a.probs[0, ..., 3], b.probs[0, ..., 1], atol=1e-5)


def test_redetection_searches_wider_only_for_lost_targets(tiny, dog):
    """Off, or on with a threshold no score reaches below: the official tracker. On, a target
    counted lost for `redetect_frames` frames is searched in the wider crop without the cosine
    window: its output is that search's; other targets keep the local search."""
    model, variables = tiny
    frames, gt = dog
    mask = targets_mask(gt)
    plain = run(family.propagator(model, variables, max_objects=3), frames[None], mask[None])
    never = family.propagator(model, variables, max_objects=3, redetect=True, redetect_threshold=0)
    for a, b in zip(plain, run(never, frames[None], mask[None]), strict=True):
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-5)  # another program: rounding

    options = dict(max_objects=3, redetect=True, redetect_threshold=1.01, redetect_frames=2)
    always = family.propagator(model, variables, **options)
    new = np.array([[True, True, True, True]])
    state = always.init(frames[:1], mask[None], new)
    none, empty = np.zeros_like(new), np.zeros_like(mask)[None]
    o = family.build(family.InferenceOptions, options)
    local_search = jax.jit(lambda s, f: family.track(model, variables, s, f, o))
    wide_search = jax.jit(lambda s, f: family.track(model, variables, s, f, o, 511, 0.0))
    for t in range(1, T):
        bgr = frames[t : t + 1, ..., ::-1]
        local, wide = local_search(state, bgr), wide_search(state, bgr)
        lost = np.asarray(state.low) >= 2
        state, prediction = always.step(state, frames[t : t + 1], empty, none)
        want = np.where(lost[..., None, None], wide.mask, local.mask)  # [1, 3, H, W]
        np.testing.assert_allclose(np.moveaxis(prediction.probs[..., 1:], -1, 1), want, atol=1e-5)
        assert np.all(np.asarray(state.low) == t)  # every score is below 1.01
    assert lost.all() and not np.allclose(wide.mask, local.mask)
