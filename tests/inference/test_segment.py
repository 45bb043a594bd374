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
