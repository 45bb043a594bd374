"""RVOS through the inference engine: one-shot (semi-supervised) and zero-shot (unsupervised),
one compilation per frame size and slot count, the clip rollout equal to the streaming engine,
`vos-jax segment` and `eval.py --checkpoint` on synthetic and real (davis-mini) videos."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vos_jax.cli import main
from vos_jax.data import synthetic
from vos_jax.families import build_model, save_model
from vos_jax.families.rvos import BACKGROUND_SCORE, rollout
from vos_jax.families.rvos import propagator as rvos_propagator
from vos_jax.inference.engine import propagate, propagate_free
from vos_jax.io.masks import read_mask

SIZE = (48, 64)


def labels(records) -> list:
    """The label maps of the engine's per-frame records."""
    return [r.labels for r in records]


SLOTS = 3


def _init(one_shot):
    model, _ = build_model("rvos", "tiny", one_shot=one_shot)
    frames = np.zeros((1, *SIZE, 3), np.uint8)
    variables = jax.jit(model.init, static_argnames="num_objects")(
        jax.random.key(0), frames, num_objects=2
    )
    # Non-trivial decoder biases, so that predictions vary across slots and frames.
    leaves, tree = jax.tree.flatten(variables)
    rng = np.random.default_rng(0)
    leaves = [x + 0.05 * rng.normal(size=x.shape).astype(x.dtype) for x in leaves]
    return model, jax.tree.unflatten(tree, leaves)


@pytest.fixture(scope="module")
def one_shot():
    return _init(True)


@pytest.fixture(scope="module")
def zero_shot():
    return _init(False)


@pytest.fixture(scope="module")
def one_shot_propagator(one_shot):  # shared: one compilation for the tests of this module
    return rvos_propagator(*one_shot, max_objects=SLOTS)


@pytest.fixture(scope="module")
def zero_shot_propagator(zero_shot):
    return rvos_propagator(*zero_shot, max_objects=SLOTS)


@pytest.fixture(scope="module")
def video():
    return synthetic.generate_video(5, 6, SIZE, 3, late_start=False)


def test_one_shot_streaming_with_one_compilation(one_shot_propagator, video):
    propagator = one_shot_propagator
    frames, masks = video
    out = labels(propagate(propagator, iter(frames), masks[0]))
    assert len(out) == len(frames) and all(o.shape == SIZE and o.dtype == np.uint8 for o in out)
    np.testing.assert_array_equal(out[0], masks[0])
    one_object = np.where(masks[0] == 2, 9, 0).astype(np.uint8)  # another id, fewer objects
    assert set(
        np.unique(np.stack(labels(propagate(propagator, iter(frames[1:]), one_object))))
    ) <= {
        0,
        9,
    }
    labels(propagate(propagator, iter(frames[:3]), np.zeros(SIZE, np.uint8)))
    assert propagator.step._cache_size() == 1 and propagator.init._cache_size() == 1


def test_clip_rollout_equals_the_streaming_engine(one_shot, one_shot_propagator, video):
    """rollout (lax.scan over frames, given_frames=1) = init + step frame by frame."""
    model, variables = one_shot
    frames, masks = video
    propagator = one_shot_propagator
    slots = masks[0].astype(np.int32)  # ids 1..3 are slots 1..3 here
    new = np.ones((1, SLOTS + 1), bool)
    state = propagator.init(frames[None, 0], slots[None], new)
    empty, none = np.zeros((1, *SIZE), np.int32), np.zeros_like(new)
    streamed = []
    for frame in frames[1:]:
        state, prediction = propagator.step(state, frame[None], empty, none)
        scores = prediction.probs
        streamed.append(np.asarray(scores[0]))
    first = jax.nn.one_hot(slots, SLOTS + 1)[None, ..., 1:]
    probs = rollout(model, variables, jnp.asarray(frames[None]), first, SLOTS, given_frames=1)
    for t, scores in enumerate(streamed, start=1):
        np.testing.assert_allclose(scores[..., 1:], np.asarray(probs[0, t]), atol=1e-5)
        assert np.all(scores[..., 0] == BACKGROUND_SCORE)


def test_objects_arriving_later_start_from_their_mask(one_shot_propagator, video):
    frames, masks = video
    propagator = one_shot_propagator
    first = np.where(masks[0] == 1, 1, 0).astype(np.uint8)
    later = np.where(masks[2] == 3, 3, 0).astype(np.uint8)
    out = labels(propagate(propagator, iter(frames), first, {2: later}))
    assert np.all(out[2][later == 3] == 3)  # the handed-over object is its given mask there
    assert not np.any(np.stack(out[:2]) == 3)


def test_zero_shot_discovers_slots_with_one_compilation(
    zero_shot, zero_shot_propagator, one_shot_propagator, video
):
    model, variables = zero_shot
    propagator = zero_shot_propagator
    assert propagator.unsupervised
    frames, _ = video
    out = labels(propagate_free(propagator, iter(frames)))
    assert len(out) == len(frames) and set(np.unique(np.stack(out))) <= set(range(SLOTS + 1))
    probs = rollout(model, variables, jnp.asarray(frames[None]), None, SLOTS)
    scores = jnp.concatenate([jnp.full((*probs.shape[:4], 1), BACKGROUND_SCORE), probs], -1)
    want = np.asarray(jnp.argmax(scores, axis=-1))[0]
    np.testing.assert_array_equal(np.stack(out), want)  # frame 0 decoded too, as the scan does
    labels(propagate_free(propagator, iter(frames[:2])))
    assert propagator.step._cache_size() == 1 and propagator.init._cache_size() == 1
    with pytest.raises(ValueError, match="unsupervised"):
        labels(propagate_free(one_shot_propagator, iter(frames)))


@pytest.mark.parametrize("mode", ["one_shot", "zero_shot"])
def test_segment_and_eval_with_a_checkpoint(mode, request, tmp_path, capsys):
    model, variables = request.getfixturevalue(mode)
    ckpt = save_model(
        tmp_path / "ckpt", "rvos", "tiny", variables, kwargs={"one_shot": model.one_shot}
    )
    root = synthetic.write_dataset(tmp_path / "davis", "davis", 2, 5, SIZE, 2, seed=1)
    seq = (root / "ImageSets/2017/val.txt").read_text().split()[0]
    frames_dir = root / "JPEGImages/480p" / seq
    first = root / "Annotations/480p" / seq / "00000.png"
    argv = ["segment", "--checkpoint", str(ckpt), "--frames", str(frames_dir)]
    argv += ["--out", str(tmp_path / "out"), "--max_objects", "3"]
    masks = ["--masks", str(first)] if model.one_shot else []
    assert main([*argv, *masks]) == 0, capsys.readouterr().err
    pngs = sorted((tmp_path / "out" / seq).glob("*.png"))
    assert len(pngs) == 5
    if model.one_shot:
        np.testing.assert_array_equal(read_mask(pngs[0]), read_mask(first))
    wrong = [] if model.one_shot else ["--masks", str(first)]
    assert main([*argv, "--overwrite", *wrong]) == 2  # a one-shot model needs masks, zero-shot none
    assert "masks" in capsys.readouterr().err
    task = "semi-supervised" if model.one_shot else "unsupervised"
    results = tmp_path / "results"
    eval_argv = ["eval", "--davis_root", str(root), "--results", str(results), "--workers", "1"]
    eval_argv += ["--checkpoint", str(ckpt), "--max_objects", "3"]
    assert main([*eval_argv, "--task", task]) == 0, capsys.readouterr().err
    report = json.loads((results / "results-val.json").read_text())
    assert report["per_object"]
    other = "unsupervised" if model.one_shot else "semi-supervised"
    assert main([*eval_argv, "--task", other, "--overwrite"]) == 2
    assert f"--task {task}" in capsys.readouterr().err
    assert main([*eval_argv, "--task", task, "--overwrite", "--global_every", "2"]) == 2
    assert "not an option of rvos" in capsys.readouterr().err


def test_davis_mini_sequence_both_modes(one_shot, zero_shot, tmp_path):
    """Real 480p DAVIS frames through eval.py --checkpoint in both protocols (untrained
    weights: the plumbing at full resolution, not accuracy)."""
    from tests.shared_data import DAVIS_MINI, shared_path

    source = shared_path(DAVIS_MINI) / "DAVIS"
    davis = tmp_path / "DAVIS"
    for kind, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
        for target in {kind, "Annotations_unsupervised" if kind == "Annotations" else kind}:
            (davis / target / "480p" / "car-shadow").mkdir(parents=True, exist_ok=True)
            for t in range(4):
                name = f"480p/car-shadow/{t:05d}.{ext}"
                if not (davis / target / name).exists():
                    (davis / target / name).symlink_to(source / kind / name)
    for (model, variables), task in ((one_shot, "semi-supervised"), (zero_shot, "unsupervised")):
        ckpt = save_model(
            tmp_path / task / "ckpt", "rvos", "tiny", variables, kwargs={"one_shot": model.one_shot}
        )
        results = tmp_path / task / "results"
        argv = ["eval", "--davis_root", str(davis), "--results", str(results), "--sequences"]
        argv += ["car-shadow", "--checkpoint", str(ckpt), "--workers", "1", "--task", task]
        assert main([*argv, "--max_objects", "2"]) == 0
        masks = [read_mask(p) for p in sorted((results / "car-shadow").glob("*.png"))]
        assert len(masks) == 4 and masks[0].shape == (480, 854)


def test_runs_at_the_input_size(one_shot, video):
    """input_height x input_width: frames resized for the model, scores back at the frame size,
    equal to running the model on the resized frames (as the official code runs at 240x427)."""
    model, variables = one_shot
    frames, masks = video
    size = (24, 40)
    propagator = rvos_propagator(
        model, variables, max_objects=SLOTS, input_height=24, input_width=40
    )
    state = propagator.init(frames[None, 0], masks[None, 0].astype(np.int32), np.ones((1, 4), bool))
    empty, none = np.zeros((1, *SIZE), np.int32), np.zeros((1, SLOTS + 1), bool)
    state, prediction = propagator.step(state, frames[None, 1], empty, none)
    scores = prediction.probs
    assert scores.shape == (1, *SIZE, SLOTS + 1)
    small = jnp.asarray(frames[:2], jnp.float32) / 255
    small = jax.image.resize(small, (2, *size, 3), "bilinear", antialias=False)
    first = jax.image.resize(jnp.asarray(masks[0]), size, "nearest")
    first = jax.nn.one_hot(first, SLOTS + 1)[None, ..., 1:]
    probs = rollout(model, variables, small[None], first, SLOTS, given_frames=1)[0, 1]
    want = jax.image.resize(probs, (*SIZE, SLOTS), "bilinear")
    np.testing.assert_allclose(np.asarray(scores[0, ..., 1:]), np.asarray(want), atol=1e-5)
