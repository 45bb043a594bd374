"""The inference engine with FEELVOS: streaming and scan drivers, objects that arrive later, one
compilation per (model, frame size, max objects), published checkpoints and `vos-jax segment`."""

import json

import jax
import numpy as np
import pytest
from PIL import Image

from vos_jax.cli import main
from vos_jax.data import synthetic
from vos_jax.families import build_model
from vos_jax.inference.engine import propagate, propagate_clip
from vos_jax.inference.feelvos import feelvos_propagator
from vos_jax.io.masks import read_mask, write_mask
from vos_jax.io.published import load_model, save_model

SIZE = (48, 64)


@pytest.fixture(scope="module")
def tiny():
    model, _ = build_model("feelvos", "tiny")
    frames = np.zeros((1, *SIZE, 3), np.uint8)
    # unsafe_rbg: the default threefry RNG takes ~0.2 s per draw to compile on the CPU.
    variables = jax.jit(model.init, static_argnames="num_objects")(
        jax.random.key(0, impl="unsafe_rbg"), frames, num_objects=4
    )
    return model, variables


@pytest.fixture(scope="module")
def video():
    frames, masks = synthetic.generate_video(3, 6, SIZE, 3, late_start=False)
    return frames, masks


def test_streaming_segments_every_frame_with_one_compilation(tiny, video):
    model, variables = tiny
    propagator = feelvos_propagator(model, variables, max_objects=3)
    frames, masks = video
    out = list(propagate(propagator, iter(frames), masks[0]))
    assert len(out) == len(frames) and all(o.shape == SIZE and o.dtype == np.uint8 for o in out)
    np.testing.assert_array_equal(out[0], masks[0])  # frame 0 is the given mask
    assert all(set(np.unique(o)) <= {0, 1, 2, 3} for o in out)
    # Other videos of the same size with fewer objects (and arbitrary ids) reuse the compilation.
    one_object = np.where(masks[0] == 2, 7, 0).astype(np.uint8)
    out = list(propagate(propagator, iter(frames[:4]), one_object))
    assert set(np.unique(np.stack(out))) <= {0, 7}
    list(propagate(propagator, iter(frames[2:]), np.zeros(SIZE, np.uint8)))  # no object at all
    assert propagator.step._cache_size() == 1 and propagator.init._cache_size() == 1


def test_scan_driver_matches_the_streaming_driver(tiny, video):
    model, variables = tiny
    propagator = feelvos_propagator(model, variables, max_objects=3)
    frames, masks = video
    streamed = list(propagate(propagator, iter(frames), masks[0]))
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
    np.testing.assert_allclose(np.asarray(probs[0, 0]), np.asarray(first[0]), atol=1e-5)
    scanned = np.argmax(np.asarray(probs[0]), axis=-1)
    agreement = np.mean(scanned == np.stack(streamed[1:]))
    assert agreement > 0.98


def test_objects_arriving_later_are_added(tiny, video):
    model, variables = tiny
    propagator = feelvos_propagator(model, variables, max_objects=3, max_reference_frames=2)
    frames, masks = video
    first = np.where(masks[0] == 1, 1, 0).astype(np.uint8)
    late = np.where(masks[2] == 2, 5, 0).astype(np.uint8)  # id 5 appears at frame 2
    out = list(propagate(propagator, iter(frames), first, {2: late}))
    assert 5 not in out[1]
    np.testing.assert_array_equal(out[2] == 5, late == 5)  # the given mask holds at frame 2
    with pytest.raises(ValueError, match="reference frames"):
        single = feelvos_propagator(model, variables, max_objects=3, max_reference_frames=1)
        list(propagate(single, iter(frames), first, {2: late}))


def test_bad_inputs_are_refused(tiny, video):
    model, variables = tiny
    propagator = feelvos_propagator(model, variables, max_objects=2)
    frames, masks = video
    with pytest.raises(ValueError, match="max_objects=2"):
        list(propagate(propagator, iter(frames), masks[0]))  # 3 objects
    with pytest.raises(ValueError, match="mask of frame 0"):
        list(propagate(propagator, iter(frames), masks[0][:20]))
    changing = [frames[0], frames[1][:40]]
    with pytest.raises(ValueError, match="frame 1 has shape"):
        list(propagate(propagator, iter(changing), np.zeros(SIZE, np.uint8)))


def test_published_checkpoint_round_trip(tiny, tmp_path):
    model, variables = tiny
    path = save_model(tmp_path / "ckpt", "feelvos", "tiny", variables, metrics={"J&F": 0.5})
    loaded, restored, meta = load_model(path)
    assert meta["family"] == "feelvos" and meta["metrics"] == {"J&F": 0.5}
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    frames = np.zeros((1, *SIZE, 3), np.uint8)
    apply = jax.jit(lambda m, v: m.apply(v, frames, num_objects=2)[0], static_argnums=0)
    np.testing.assert_array_equal(apply(loaded, restored), apply(model, variables))
    with pytest.raises(FileExistsError):
        save_model(path, "feelvos", "tiny", variables)
    with pytest.raises(FileNotFoundError, match="not a vos-jax checkpoint"):
        load_model(tmp_path / "nothing")


def test_segment_command_and_eval_with_a_checkpoint(tiny, tmp_path, capsys):
    model, variables = tiny
    ckpt = save_model(tmp_path / "ckpt", "feelvos", "tiny", variables)
    root = synthetic.write_dataset(tmp_path / "davis", "davis", 2, 5, SIZE, 2, seed=1)
    seq = (root / "ImageSets/2017/val.txt").read_text().split()[0]
    frames_dir = root / "JPEGImages/480p" / seq
    first = root / "Annotations/480p" / seq / "00000.png"
    argv = ["segment", "--model", "feelvos", "--checkpoint", str(ckpt), "--frames", str(frames_dir)]
    argv += ["--masks", str(first), "--out", str(tmp_path / "out")]
    assert main(argv) == 0, capsys.readouterr().err
    pngs = sorted((tmp_path / "out" / seq).glob("*.png"))
    assert [p.name for p in pngs] == [f"{t:05d}.png" for t in range(5)]
    assert Image.open(pngs[1]).mode == "P"
    np.testing.assert_array_equal(read_mask(pngs[0]), read_mask(first))
    assert (tmp_path / "out" / f"{seq}_overlay.mp4").stat().st_size > 0
    assert main(argv) == 2  # results exist: refused without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    results = tmp_path / "results"
    eval_argv = ["eval", "--davis_root", str(root), "--results", str(results)]
    assert main([*eval_argv, "--checkpoint", str(ckpt), "--workers", "1"]) == 0
    report = json.loads((results / "results-val.json").read_text())
    assert set(report["per_object"]) == {f"{seq}_1", f"{seq}_2"}
    missing = ["--checkpoint", str(tmp_path / "none"), "--masks", str(first)]
    assert (
        main(["segment", "--frames", str(frames_dir), "--out", str(tmp_path / "o2"), *missing]) == 2
    )


def test_mp4_input(tiny, tmp_path, video):
    import cv2

    model, variables = tiny
    ckpt = save_model(tmp_path / "ckpt", "feelvos", "tiny", variables)
    frames, masks = video
    writer = cv2.VideoWriter(
        str(tmp_path / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, SIZE[::-1]
    )
    for frame in frames:
        writer.write(frame[..., ::-1])
    writer.release()
    write_mask(tmp_path / "first.png", masks[0])
    argv = ["segment", "--checkpoint", str(ckpt), "--frames", str(tmp_path / "clip.mp4")]
    assert main([*argv, "--masks", str(tmp_path / "first.png"), "--out", str(tmp_path / "o")]) == 0
    assert len(list((tmp_path / "o" / "clip").glob("*.png"))) == len(frames)


def test_config_file_sets_engine_options(tiny, tmp_path, capsys):
    from vos_jax.cli import build_parser, engine_options

    config = "configs/feelvos_davis17.py"
    args = build_parser().parse_args(
        [
            "segment",
            "--checkpoint",
            "c",
            "--frames",
            "f",
            "--masks",
            "m",
            "--out",
            "o",
            "--config",
            config,
            "--global_every",
            "5",
        ]
    )
    options = engine_options(args, "feelvos")
    assert options == dict(
        max_objects=10, global_every=5, max_reference_frames=1, max_displacement=15
    )  # the flag wins over the config
    (tmp_path / "bad.py").write_text(
        "import ml_collections\n"
        "def get_config(arg=None):\n"
        "    return ml_collections.ConfigDict({'inference': {'max_object': 3}})\n"
    )
    args.config = str(tmp_path / "bad.py")
    with pytest.raises(ValueError, match="unknown inference keys"):
        engine_options(args, "feelvos")
    args.config = str(tmp_path / "missing.py")
    with pytest.raises(FileNotFoundError, match="missing.py"):
        engine_options(args, "feelvos")


def test_davis_mini_sequence_end_to_end(tiny, tmp_path):
    """A real 480p DAVIS sequence through eval.py --checkpoint (untrained weights: this checks
    the plumbing at full resolution, not accuracy)."""
    from tests.shared_data import DAVIS_MINI, shared_path

    source = shared_path(DAVIS_MINI) / "DAVIS"
    davis = tmp_path / "DAVIS"  # the first 6 frames of car-shadow: real size, short run
    for kind, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
        (davis / kind / "480p" / "car-shadow").mkdir(parents=True)
        for t in range(6):
            name = f"480p/car-shadow/{t:05d}.{ext}"
            (davis / kind / name).symlink_to(source / kind / name)
    model, variables = tiny
    ckpt = save_model(tmp_path / "ckpt", "feelvos", "tiny", variables)
    results = tmp_path / "results"
    argv = ["eval", "--davis_root", str(davis), "--results", str(results), "--sequences"]
    argv += ["car-shadow", "--checkpoint", str(ckpt), "--workers", "1", "--max_objects", "2"]
    assert main(argv) == 0
    assert len(list((results / "car-shadow").glob("*.png"))) == 6
    assert json.loads((results / "results-val.json").read_text())["per_object"]["car-shadow_1"]


def test_global_matching_every_n_frames(tiny, video):
    model, variables = tiny
    frames, masks = video
    new = np.array([[True, True, True, True]])
    none = np.zeros_like(new)
    empty = np.zeros((1, *SIZE), np.int32)
    global_maps = {}
    for every in (1, 2):
        propagator = feelvos_propagator(model, variables, max_objects=3, global_every=every)
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
