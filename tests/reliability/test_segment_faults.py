"""`vos-jax segment` under bad input and interruption: a one-line error, exit code 2 and nothing
written; killed (kill -9, SIGTERM, Ctrl-C) at a random frame, a video's results are complete
and equal to an uninterrupted run's, or absent (no partial PNG folder; an overlay absent or
playable)."""

import os
import random
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from tests.conftest import SIZE, subprocess_cache_env
from tests.reliability.files import assert_unchanged, snapshot
from vos_jax.cli import main
from vos_jax.data import synthetic
from vos_jax.families import save_model
from vos_jax.io.masks import read_mask, write_mask

FRAMES = 48  # the interrupted runs' video: long enough to stop part way


@pytest.fixture(scope="module")
def files(tiny, tmp_path_factory):
    """A checkpoint, a 6-frame video (frames/, first.png) and a FRAMES-frame one (long/)."""
    root = tmp_path_factory.mktemp("segment-faults")
    ckpt = save_model(root / "ckpt", "feelvos", "tiny", tiny[1])
    frames, masks = synthetic.generate_video(5, 6, SIZE, 2, late_start=False)
    for folder, count in ((root / "frames", 6), (root / "long", FRAMES)):
        folder.mkdir()
        for t in range(count):
            cv2.imwrite(str(folder / f"{t:05d}.jpg"), frames[t % 6][..., ::-1])
    write_mask(root / "first.png", masks[0])
    write_mask(root / "small.png", masks[0][:24])
    return root, ckpt


def _prepare(case: str, root, out):
    """Arguments (and files) of a bad input; -> (extra argv, frames folder)."""
    frames = root / "frames"
    if case == "out_is_file":
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("not a folder")
    elif case == "results_exist":
        (out / "frames").mkdir(parents=True)
        write_mask(out / "frames" / "00000.png", np.zeros(SIZE, np.uint8))
    elif case == "overlay_exists":
        out.mkdir(parents=True)
        (out / "frames_overlay.mp4").write_bytes(b"an earlier overlay")
    elif case == "tracks_exist":
        out.mkdir(parents=True)
        (out / "frames_tracks.json").write_text("{}")
    elif case == "duplicate_names":
        frames = out.parent / "dup" / "frames"
        frames.mkdir(parents=True)
        for name in ("00000.jpg", "00005.jpg", "00005.png"):
            cv2.imwrite(str(frames / name), np.zeros((*SIZE, 3), np.uint8))
    return frames


CASES = [  # (case, extra arguments, message fragment)
    ("out_is_file", [], "--out"),
    ("results_exist", [], "--overwrite"),
    ("overlay_exists", [], "frames_overlay.mp4: already exists; pass --overwrite"),
    ("tracks_exist", [], "frames_tracks.json: already exists; pass --overwrite"),
    ("duplicate_names", [], "00005.jpg and 00005.png have the same name"),
    ("global_every_0", ["--global_every", "0"], "--global_every: expected an integer >= 1"),
    ("max_objects_0", ["--max_objects", "0"], "--max_objects: expected an integer >= 1"),
    ("max_displacement_neg", ["--max_displacement", "-2"], "--max_displacement: expected"),
    ("max_size_0", ["--max_size", "0"], "--max_size '0': expected a positive integer"),
    ("max_size_text", ["--max_size", "big"], "--max_size 'big'"),
    ("mask_size", ["--masks", "@small.png"], "the mask of frame 00000 is 24x64"),
    ("missing_frames", ["--frames", "@none"], "none"),
    ("batch_0", ["--batch", "0"], "--batch"),
    ("low_memory", [], "needs about"),
]


@pytest.mark.parametrize("case,extra,fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_writes_nothing(
    case, extra, fragment, files, tmp_path, capsys, monkeypatch
):
    root, ckpt = files
    out = tmp_path / "out"
    frames = _prepare(case, root, out)
    if case == "low_memory":  # the compiled step needs more memory than the device has
        from vos_jax.inference import segment

        monkeypatch.setattr(segment, "memory_limit", lambda: (1000, "the device"))
    extra = [str(root / a[1:]) if a.startswith("@") else a for a in extra]
    argv = ["segment", "--checkpoint", str(ckpt), "--frames", str(frames), "--masks"]
    argv += [str(root / "first.png"), "--out", str(out), "--no_progress", *extra]
    before = snapshot(root, tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert fragment in err, err
    assert_unchanged(before, root, tmp_path)


def _env(tmp_path_factory):
    return {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": os.environ["XLA_FLAGS"],  # this process's: the same numerics as in it
        **subprocess_cache_env(tmp_path_factory),
    }


def _assert_complete_or_absent(out, reference):
    """`out/long/` complete and equal to `reference/long/`, or absent; the overlay the same."""
    result, overlay = out / "long", out / "long_overlay.mp4"
    if result.exists():
        names = sorted(p.name for p in (reference / "long").iterdir())
        assert sorted(p.name for p in result.iterdir()) == names
        for name in names:
            np.testing.assert_array_equal(
                read_mask(result / name), read_mask(reference / "long" / name)
            )
    if overlay.exists():
        capture = cv2.VideoCapture(str(overlay))
        count = 0
        while capture.read()[0]:
            count += 1
        capture.release()
        assert count == FRAMES, f"{overlay}: {count} playable frames of {FRAMES}"


def test_interrupted_runs_leave_whole_results_or_none(files, tmp_path, tmp_path_factory, capsys):
    root, ckpt = files
    argv = ["segment", "--checkpoint", str(ckpt), "--frames", str(root / "long"), "--masks"]
    argv += [str(root / "first.png")]
    reference = tmp_path / "reference"
    assert main([*argv, "--out", str(reference), "--no_progress"]) == 0, capsys.readouterr().err
    rng = random.Random(18)
    env = _env(tmp_path_factory)
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
        out = tmp_path / sig.name
        command = [sys.executable, "-m", "vos_jax.cli", *argv, "--out", str(out)]
        process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        at = rng.randint(1, FRAMES // 3)  # stop once this many frames are written
        deadline = time.monotonic() + 60
        while len(list(out.glob(".long.vos-jax-partial.*/*.png"))) < at:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "no frame written in 60 s"
            time.sleep(0.005)
        process.send_signal(sig)
        _, err = process.communicate(timeout=60)
        _assert_complete_or_absent(out, reference)
        partial = list(out.glob(".*vos-jax-partial*"))
        if process.returncode == 0:  # it had finished: complete
            assert (out / "long").exists() and not partial
            continue
        assert not (out / "long").exists(), f"{sig.name}: a partial result folder"
        if sig == signal.SIGKILL:
            assert process.returncode == -signal.SIGKILL and partial
            # A later run ignores the killed run's partial files, and removes them.
            assert main([*argv, "--out", str(out), "--no_progress"]) == 0
            assert not list(out.glob(".*vos-jax-partial*"))
            _assert_complete_or_absent(out, reference)
            assert (out / "long").exists()
        else:
            assert process.returncode == 128 + sig, err
            assert not partial, partial
            assert "Traceback" not in err, err
            assert err.strip().splitlines()[-1] == (
                f"error: interrupted ({sig.name}): no partial results kept"
            ), err
