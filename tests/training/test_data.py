"""The training data a config names: the synthetic-data cache, the family's samples, the prior
masks and image-folder sources from config keys."""

import numpy as np
from PIL import Image

from vos_jax.training import data
from vos_jax.training.config import base_config, validate


def test_synthetic_videos_are_generated_once_and_reused(tmp_path):
    config = base_config("feelvos")
    config.synthetic.update(num_videos=3, num_frames=4, height=32, width=48, num_objects=1)
    config.synthetic.cache_dir = str(tmp_path)
    root = data.synthetic_root(config.synthetic)
    assert (root / "ImageSets" / "2017" / "val.txt").read_text().split()
    stamp = {p: p.stat().st_mtime_ns for p in root.rglob("*.jpg")}
    assert data.synthetic_root(config.synthetic) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.jpg")} == stamp  # not rewritten
    config.synthetic.seed = 1
    assert data.synthetic_root(config.synthetic) != root
    assert not list(tmp_path.glob(".*"))  # no temporary folders left


def test_synthetic_val_videos_sets_the_held_out_split(tmp_path):
    config = base_config("feelvos")
    config.synthetic.update(num_videos=5, num_frames=3, height=32, width=48, num_objects=1)
    config.synthetic.cache_dir = str(tmp_path)
    default = data.synthetic_root(config.synthetic)  # a fifth: 1 of 5
    assert (default / "ImageSets/2017/val.txt").read_text().split() == ["synth-004"]
    config.synthetic.val_videos = 3
    root = data.synthetic_root(validate(config).synthetic)
    assert root != default  # another split, another cache entry
    assert (root / "ImageSets/2017/train.txt").read_text().split() == ["synth-000", "synth-001"]
    assert (root / "ImageSets/2017/val.txt").read_text().split() == [
        "synth-002",
        "synth-003",
        "synth-004",
    ]
    # the videos themselves do not depend on the split
    assert (root / "JPEGImages/480p/synth-004/00002.jpg").read_bytes() == (
        default / "JPEGImages/480p/synth-004/00002.jpg"
    ).read_bytes()


def test_sample_config_takes_the_family_sampling_and_prior_masks(tmp_path):
    config = base_config("rvos")
    assert data.data_sample_config(config).sampling == "clip"  # the family's
    config = base_config("feelvos")
    assert data.data_sample_config(config).sampling == "triplet"
    config.synthetic.update(num_videos=3, num_frames=4, height=32, width=48, num_objects=1)
    config.synthetic.cache_dir = str(tmp_path)
    config.data.update(prior=True, crop_size=(16, 16), batch_size=2, max_objects=1)
    source, val_root = data.train_source(validate(config))
    batch = data.train_dataset(config, source)[0]
    assert batch["prior"].shape == batch["masks"].shape == (2, 3, 16, 16)
    assert val_root is not None


def test_image_folders_train_with_static_sampling_and_lucid_dreaming(tmp_path):
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
            tmp_path / "images" / f"{i}.png"
        )
        mask = np.zeros((40, 40), np.uint8)
        mask[10:30, 8 + i : 28 + i] = 1
        Image.fromarray(mask).save(tmp_path / "masks" / f"{i}.png")
    config = base_config("feelvos")
    config.data.update(source="images", root=str(tmp_path), sampling="static", lucid=True)
    config.data.update(prior=True, crop_size=(24, 24), batch_size=2, max_objects=1)
    config.loss.given_frames = 2
    source, val_root = data.train_source(validate(config))
    batch = data.train_dataset(config, source)[0]
    assert batch["frames"].shape == (2, 3, 24, 24, 3) and batch["prior"].shape == (2, 3, 24, 24)
    assert val_root is None  # single images: nothing to validate on
