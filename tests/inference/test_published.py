"""Published checkpoints: `vos_jax.load_published` gives a ready segment function, and every
read checks SHA256SUMS, naming a corrupted or missing file."""

import jax
import numpy as np
import pytest

import vos_jax
from vos_jax import families
from vos_jax.data import synthetic
from vos_jax.inference.engine import propagate
from vos_jax.io.layouts import DavisLayout
from vos_jax.io.masks import read_mask
from vos_jax.io.video import read_frames


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model, _ = families.build_model("rvos", "tiny")
    example = {"frames": np.zeros((1, 1, 48, 64, 3), np.uint8),
               "object_valid": np.ones((1, 3), bool)}  # fmt: skip
    variables = families.get("rvos").init_variables(model, jax.random.key(1), example)
    path = tmp_path_factory.mktemp("published") / "rvos"
    return families.save_model(path, "rvos", "tiny", variables, inference={"max_objects": 2})


def test_load_published_segments_a_video_folder(checkpoint, tmp_path):
    root = synthetic.write_dataset(tmp_path, "davis", 2, 4, (48, 64), 2, seed=0)
    layout = DavisLayout(root)
    seq = layout.sequences("val")[0]
    first = read_mask(layout.mask_path(seq, "00000"))
    segment = vos_jax.load_published(checkpoint)
    assert segment.meta["family"] == "rvos" and segment.propagator.max_objects == 2
    labels = segment(layout.frames_dir(seq), first)
    frames = list(read_frames(layout.frames_dir(seq)))
    expected = np.stack([r.labels for r in propagate(segment.propagator, frames, first)])
    assert labels.shape == (4, 48, 64) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(labels[0], first)
    with pytest.raises(ValueError, match="first_mask: this model needs"):
        segment(frames)


def test_a_corrupted_or_missing_file_is_named(checkpoint, tmp_path, capsys):
    import shutil

    from vos_jax.cli import main

    copy = tmp_path / "copy"
    shutil.copytree(checkpoint, copy)
    sums = (copy / "SHA256SUMS").read_text().splitlines()
    assert {line.split("  ")[1] for line in sums} >= {"model.json", "README.md"}
    assert any(line.split("  ")[1].startswith("variables/") for line in sums)
    families.load_model(copy)  # intact: loads
    victim = max((p for p in (copy / "variables").rglob("*") if p.is_file()),
                 key=lambda p: p.stat().st_size)  # fmt: skip
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{victim}: sha256 differs"):
        vos_jax.load_published(copy)
    frames = tmp_path / "frames"
    assert main(["segment", "--checkpoint", str(copy), "--frames", str(frames), "--masks",
                 str(frames), "--out", str(tmp_path / "out")]) == 2  # fmt: skip
    assert f"{victim}: sha256 differs" in capsys.readouterr().err
    victim.unlink()
    with pytest.raises(ValueError, match=f"{victim}: missing from the checkpoint"):
        families.load_model(copy)
