"""The portrait family (families/portrait.py): MediaPipe's temporal blend against a transcription
of its C++ loop, the engine with one compilation for any object count, the MaskTrack loss with
its boundary weighting, and `vos-jax portrait` on a real DAVIS person sequence."""

import os

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.convert.tflite_files import add_model
from tests.shared_data import shared_path
from vos_jax.cli import main
from vos_jax.data import synthetic
from vos_jax.families import build_model
from vos_jax.families import portrait as family
from vos_jax.inference.engine import propagate
from vos_jax.io.masks import read_mask
from vos_jax.io.video import read_frames

SIZE = (32, 64)


def _mediapipe_loop(new, prev, ratio):
    """TfLiteTensorsToSegmentationCalculator::ProcessCpu's blend, pixel by pixel in float32."""
    out = np.zeros_like(new)
    for i in np.ndindex(new.shape):
        p, q = np.float32(new[i]), np.float32(prev[i])
        eps, one = np.float32(0.001), np.float32(1)
        a = one + (p * np.log(p + eps) + (one - p) * np.log(one - p + eps)) / np.log(np.float32(2))
        a = min(max(a, np.float32(0)), np.float32(1))
        a *= np.float32(2) - a
        mixed = p * a + q * (np.float32(1) - a)
        out[i] = mixed * np.float32(ratio) + (np.float32(1) - np.float32(ratio)) * p
    return out


def test_blend_with_previous_is_mediapipes():
    rng = np.random.default_rng(0)
    new = np.concatenate([rng.uniform(0, 1, 200), [0.0, 1.0, 0.5, 1e-7, 1 - 1e-7]]).astype(
        np.float32
    )
    prev = rng.uniform(0, 1, new.shape).astype(np.float32)
    for ratio in (0.9, 0.0, 1.0):
        got = family.blend_with_previous(jnp.asarray(new), jnp.asarray(prev), ratio)
        np.testing.assert_allclose(got, _mediapipe_loop(new, prev, ratio), atol=2e-6)
    # Certain pixels keep their value, uncertain ones (p = 0.5) take the previous mask's.
    got = family.blend_with_previous(jnp.asarray([0.0, 1.0, 0.5]), jnp.asarray([1.0, 0.0, 1.0]), 1)
    np.testing.assert_allclose(got, [0.0, 1.0, 1.0], atol=0.02)


@pytest.fixture(scope="module")
def tiny():
    model, _ = build_model("portrait", "tiny")
    sample = {"frames": np.zeros((1, *SIZE, 3))}
    variables = jax.jit(lambda key: family.init_variables(model, key, sample))(jax.random.key(0))
    return model, variables


def test_engine_follows_each_object_with_one_compilation(tiny):
    model, variables = tiny
    prop = family.propagator(model, variables, max_objects=3, input_height=32, input_width=64)
    frames, masks = synthetic.generate_video(0, 5, SIZE, 3, late_start=False)
    out = [r.labels for r in propagate(prop, iter(frames), masks[0])]
    assert len(out) == 5 and all(o.shape == SIZE for o in out)
    np.testing.assert_array_equal(out[0], masks[0])
    assert set(np.unique(np.stack(out))) <= set(np.unique(masks[0]))
    one = np.where(masks[0] == 2, 7, 0).astype(np.uint8)
    assert set(np.unique(np.stack([r.labels for r in propagate(prop, iter(frames), one)]))) <= {
        0, 7}  # fmt: skip
    assert prop.step._cache_size() == 1 and prop.init._cache_size() == 1


def test_step_equals_the_model_on_each_stream(tiny):
    """The propagator's masks = softmax of the model on (frame, that slot's prior), blended and
    kept as 8 bits, slot by slot."""
    model, variables = tiny
    prop = family.propagator(model, variables, max_objects=2, input_height=32, input_width=64)
    frames, masks = synthetic.generate_video(1, 2, SIZE, 2, late_start=False)
    new = np.ones((1, 3), bool)
    state = prop.init(frames[:1], masks[:1].astype(np.int32), new)
    state2, prediction = prop.step(state, frames[1:2], np.zeros((1, *SIZE), np.int32), ~new)
    for slot in (1, 2):
        prior = (masks[0] == slot).astype(np.float32)
        x = family.model_input(frames[1:2], prior[None], model.in_channels)
        p = jax.nn.softmax(jax.jit(model.apply)(variables, x), -1)[0, ..., 1]
        want = np.floor(np.asarray(family.blend_with_previous(p, prior, 0.9)) * 255) / 255
        np.testing.assert_allclose(state2.previous[0, slot - 1], want, atol=1e-5)
        np.testing.assert_allclose(prediction.probs[0, ..., slot], want, atol=1e-5)


def test_loss_weights_boundaries_and_trains_every_parameter(tiny):
    model, variables = tiny
    size = (64, 96)  # every parameter gets a gradient (at 32x64 the bottleneck is 1x2)
    frames = np.random.default_rng(0).integers(0, 255, (2, 1, *size, 3), np.uint8)
    masks = np.zeros((2, 1, *size), np.uint8)
    masks[:, :, 16:48, 20:60] = 1
    masks[1, :, :4] = 255  # void
    prior = np.roll(masks, 3, axis=-1) % 255
    batch = dict(frames=frames, masks=masks, prior=prior.astype(np.uint8),
                 object_valid=np.array([[True, True], [True, True]]))  # fmt: skip

    def loss(params, weight):
        return family.loss(model, params, {}, batch, jax.random.key(0), 0, boundary_weight=weight)

    grad = jax.jit(jax.value_and_grad(loss, has_aux=True), static_argnums=1)
    (plain, (_, metrics)), grads = grad(variables["params"], 0.0)
    assert 0 <= metrics["iou"] <= 1 and plain > 0
    assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))
    # By hand for weight 0: the mean NLL of the known pixels of both samples.
    x = family.model_input(frames[:, 0], (prior[:, 0] == 1), model.in_channels)
    logp = np.asarray(jax.nn.log_softmax(jax.jit(model.apply)(variables, x), -1))
    target = masks[:, 0] == 1
    nll = -np.where(target, logp[..., 1], logp[..., 0])
    np.testing.assert_allclose(plain, nll[masks[:, 0] != 255].mean(), rtol=1e-5)
    band = family._boundary_band(jnp.asarray(target, jnp.float32), 3)
    assert band[0, 16, 30] == 1 and band[0, 30, 40] == 0 and band[0, 13, 30] == 1
    assert band[0, 12, 30] == 0


def test_portrait_command_on_a_davis_person_sequence(tmp_path):
    """`vos-jax portrait` with MediaPipe's selfie model on dance-twirl: a keep-colour video of the
    sequence's length and size whose colour follows the dancer (masks as PNGs, J against the
    ground truth), refusals with exit 2 and nothing overwritten."""
    selfie = shared_path("fixtures/mediapipe/selfie_segmentation.tflite")
    root = shared_path("data/davis-people/DAVIS")
    frames = root / "JPEGImages/480p/dance-twirl"
    clip = tmp_path / "clip"
    clip.mkdir()
    for path in sorted(frames.glob("*.jpg"))[:6]:
        (clip / path.name).write_bytes(path.read_bytes())
    out, masks = tmp_path / "out.mp4", tmp_path / "masks"
    args = ["portrait", str(clip), "--model", str(selfie), "--out", str(out), "--masks", str(masks)]
    assert main(args) == 0
    written = list(read_frames(out))
    assert len(written) == 6 and written[0].shape == (480, 854, 3)
    assert sorted(p.name for p in masks.iterdir()) == [f"{t:05d}.png" for t in range(6)]
    ious = []
    for t in range(6):
        mask = read_mask(masks / f"{t:05d}.png") > 0
        truth = read_mask(root / f"Annotations/480p/dance-twirl/{t:05d}.png") == 1
        ious.append((mask & truth).sum() / (mask | truth).sum())
    assert np.mean(ious) > 0.5, ious  # measured 0.65 over the whole sequence
    # keep-colour: pixels well outside the mask are grey (R = G = B up to the codec).
    background = written[3][cv2.erode((~mask).astype(np.uint8), np.ones((15, 15))) > 0]
    assert np.abs(background.astype(int) - background.mean(-1, keepdims=True)).mean() < 4
    stamp = out.stat().st_mtime_ns
    replace = ["--effect", "replace=" + str(frames / "00000.jpg"), "--out", str(tmp_path / "o.mp4")]
    assert main([*args, "--overwrite", *replace]) == 0
    for extra in (
        [],  # the video exists
        ["--effect", f"replace={selfie}", "--out", str(tmp_path / "r.mp4")],  # not an image
        ["--effect", "sepia", "--out", str(tmp_path / "e.mp4")],
    ):
        assert main([*args, *extra]) == 2
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((10, 10, 3), np.uint8))
    bad = ["--effect", f"replace={small}", "--out", str(tmp_path / "s.mp4")]
    assert main([*args[:-2], *bad]) == 2
    assert not (tmp_path / "s.mp4").exists() and not list(tmp_path.glob(".s.partial*"))
    adder = tmp_path / "add.tflite"
    adder.write_bytes(add_model())
    assert main(["portrait", str(clip), "--model", str(adder), "--out", f"{tmp_path}/x.mp4"]) == 2
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video" * 100)
    command = ["portrait", str(corrupt), "--model", str(selfie), "--out", f"{tmp_path}/c.mp4"]
    assert main(command) == 2
    assert out.stat().st_mtime_ns == stamp and not (tmp_path / "c.mp4").exists()


def test_the_app_adds_its_cpu_flag_but_keeps_the_users(monkeypatch):
    from vos_jax.inference.portrait import ONE_FRAME_XLA_FLAG, prefer_one_frame_cpu_flags

    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    prefer_one_frame_cpu_flags()
    assert os.environ["XLA_FLAGS"] == f"--xla_dump_to=/tmp/x {ONE_FRAME_XLA_FLAG}"
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true")
    prefer_one_frame_cpu_flags()
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=true"
