"""Segmenting files: `vos-jax segment` (frame folders, MP4), engine options from flags and
configs, and `eval.py --checkpoint` on synthetic and real DAVIS sequences."""

import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SIZE
from vos_jax.cli import main
from vos_jax.data import synthetic
from vos_jax.families import save_model
from vos_jax.io.masks import read_mask, write_mask


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

    config = "vos_jax/configs/feelvos_davis17.py"
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
        max_objects=10,
        global_every=5,
        max_reference_frames=1,
        max_displacement=15,
        output_stride=8,
        previous_input="labels",
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
    # Global matching at 480p (25,680 x 25,680 stride-4 pixels) takes ~7 s a frame on the CPU:
    # on frame 1 only, the later frames reuse its map (the test's time: 60 -> 18 s).
    argv += ["--global_every", "6"]
    assert main(argv) == 0
    assert len(list((results / "car-shadow").glob("*.png"))) == 6
    assert json.loads((results / "results-val.json").read_text())["per_object"]["car-shadow_1"]


@pytest.fixture(scope="module")
def propagator(tiny):
    from vos_jax.families import feelvos

    model, variables = tiny
    return feelvos.propagator(model, variables, max_objects=3)


def _write_video(folder, frames, masks, ext="png"):
    """Frames as `<t:05d>.<ext>` in `folder`, frame 0's mask as `folder.parent/<name>.png`."""
    import cv2

    folder.mkdir(parents=True)
    for t, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{t:05d}.{ext}"), frame[..., ::-1])
    write_mask(folder.parent / f"{folder.name}.png", masks[0])
    return folder, folder.parent / f"{folder.name}.png"


def test_overwrite_replaces_the_whole_result(tiny, tmp_path, video, capsys):
    """A shorter run with --overwrite leaves none of the longer earlier run's frames (eval
    would score them), and replaces its overlay."""
    model, variables = tiny
    ckpt = save_model(tmp_path / "ckpt", "feelvos", "tiny", variables)
    frames, masks = video
    long_dir, first = _write_video(tmp_path / "long" / "clip", frames, masks)
    short_dir, _ = _write_video(tmp_path / "short" / "clip", frames[:3], masks)
    argv = ["segment", "--checkpoint", str(ckpt), "--masks", str(first), "--out"]
    argv += [str(tmp_path / "out"), "--no_progress", "--frames"]
    assert main([*argv, str(long_dir)]) == 0, capsys.readouterr().err
    overlay = tmp_path / "out" / "clip_overlay.mp4"
    long_overlay = overlay.read_bytes()
    assert main([*argv, str(short_dir), "--overwrite"]) == 0, capsys.readouterr().err
    pngs = sorted(p.name for p in (tmp_path / "out" / "clip").iterdir())
    assert pngs == ["00000.png", "00001.png", "00002.png"]
    assert overlay.read_bytes() != long_overlay
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []


def test_natural_frame_order_and_duplicate_names(tmp_path):
    from vos_jax.io.layouts import list_frames
    from vos_jax.io.video import frame_names

    folder = tmp_path / "frames"
    folder.mkdir()
    image = np.zeros((4, 4, 3), np.uint8)
    for name in ("10", "2", "0", "1", "11", "frame9", "frame10"):
        Image.fromarray(image).save(folder / f"{name}.jpg")
    expected = ["0", "1", "2", "10", "11", "frame9", "frame10"]
    assert frame_names(folder) == expected
    assert [p.stem for p in list_frames(folder)] == expected  # DAVIS layouts read the same order
    Image.fromarray(image).save(folder / "2.png")
    with pytest.raises(ValueError, match=r"2\.jpg and 2\.png have the same name"):
        frame_names(folder)


def test_working_resolution(propagator, tmp_path, video):
    """Frames larger than --max_size: masks at the frame size, equal to segmenting a downscaled
    copy (OpenCV INTER_AREA frames, nearest masks) with its probabilities upsampled bilinearly
    and the argmax taken; frame 0 is the given mask itself. Against the downscaled copy's labels
    upsampled nearest they differ only along boundaries."""
    import cv2

    from vos_jax.inference.engine import Video, propagate_videos
    from vos_jax.inference.segment import segment_video

    small_frames, small_masks = video  # 48x64
    big = lambda a, how: cv2.resize(a, (128, 96), interpolation=how)
    frames = np.stack([big(f, cv2.INTER_LINEAR) for f in small_frames])
    masks = np.stack([big(m, cv2.INTER_NEAREST) for m in small_masks])
    folder, first = _write_video(tmp_path / "big" / "clip", frames, masks)
    assert segment_video(propagator, folder, first, tmp_path / "out", max_size=64) == 6
    got = [read_mask(tmp_path / "out" / f"{t:05d}.png") for t in range(6)]
    assert all(g.shape == (96, 128) for g in got)
    np.testing.assert_array_equal(got[0], masks[0])

    down = [cv2.resize(f, (64, 48), interpolation=cv2.INTER_AREA) for f in frames]
    mask0 = cv2.resize(masks[0], (64, 48), interpolation=cv2.INTER_NEAREST)
    ref = [r for _, _, r in propagate_videos(propagator, [Video(down, mask0)], 1, True)]
    for t in range(1, 6):
        probs = cv2.resize(ref[t].probs, (128, 96), interpolation=cv2.INTER_LINEAR)
        labels = np.asarray([0, *ref[t].ids], np.uint8)[probs.argmax(-1)]
        np.testing.assert_array_equal(got[t], labels)
        nearest = cv2.resize(ref[t].labels, (128, 96), interpolation=cv2.INTER_NEAREST)
        assert (got[t] == nearest).mean() > 0.9
    # Small frames are never upscaled: the default bound leaves 96x128 as it is.
    assert segment_video(propagator, folder, first, tmp_path / "full") == 6
    assert read_mask(tmp_path / "full" / "00001.png").shape == (96, 128)


def test_memory_is_flat_in_the_number_of_frames(propagator, tmp_path, video):
    """5x the frames (downscaled, with an overlay: the paths that hold frames) take no more
    peak Python/NumPy memory than 1x, less than a few frames' worth."""
    import tracemalloc

    import cv2

    from vos_jax.inference.segment import segment_video

    small_frames, small_masks = video
    frames = [cv2.resize(f, (128, 96)) for f in small_frames]
    mask0 = cv2.resize(small_masks[0], (128, 96), interpolation=cv2.INTER_NEAREST)
    peaks = []
    for n in (6, 6, 30):  # the first run compiles
        video_n = [frames[t % 6] for t in range(n)]
        folder, first = _write_video(tmp_path / f"v{len(peaks)}" / "clip", video_n, [mask0])
        out = tmp_path / f"out{len(peaks)}"
        tracemalloc.start()
        segment_video(propagator, folder, first, out / "clip", out / "o.mp4", max_size=64)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    frame_bytes = 96 * 128 * 3
    assert peaks[2] - peaks[1] < 4 * frame_bytes, peaks


def test_empty_first_mask_warns_and_progress_shows(tiny, tmp_path, video, capsys):
    model, variables = tiny
    ckpt = save_model(tmp_path / "ckpt", "feelvos", "tiny", variables)
    frames, masks = video
    folder, first = _write_video(tmp_path / "v" / "clip", frames[:3], np.zeros_like(masks))
    argv = ["segment", "--checkpoint", str(ckpt), "--frames", str(folder), "--masks", str(first)]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "no object" in warnings[0] and str(first) in warnings[0]
    assert "frame/s" in err  # the progress bar (frames per second, ETA) on stderr
