"""The grain input pipeline: sources, aligned padded batches, determinism, resume, sharding."""

import io

import jax
import numpy as np
import pytest
from PIL import Image

from vos_jax import sharding
from vos_jax.data import pipeline, synthetic
from vos_jax.data.sources import (
    DavisFolderSource,
    ImageFolderSource,
    VideoRecord,
    decode_frame,
    decode_mask,
)
from vos_jax.io.masks import write_mask

COLOURS = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], np.uint8)


def _encode(array, fmt):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, quality=95)
    return buffer.getvalue()


def colour_coded_video(rng, frames=6, size=(48, 64), objects=4):
    """A video whose pixel colour tells its object id: any misalignment of frames and masks by
    the augmentation shows up as a colour that disagrees with the mask."""
    h, w = size
    records = []
    for _ in range(frames):
        ids = np.zeros(size, np.uint8)
        for k in range(1, objects + 1):
            y, x = rng.integers(0, h - 14), rng.integers(0, w - 14)
            ids[y : y + 14, x : x + 14] = k
        records.append((_encode(COLOURS[ids], "JPEG"), _encode(ids, "PNG")))
    frames_, masks_ = zip(*records, strict=True)
    return VideoRecord(f"video{rng.integers(1000)}", frames_, masks_)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return synthetic.write_dataset(root, "davis", 6, 8, (48, 64), 3, seed=0)


SMALL = pipeline.SampleConfig(crop_size=(40, 40), max_objects=4)


def test_triplet_batches_from_the_synthetic_dataset(synthetic_root):
    source = DavisFolderSource(synthetic_root, "train")
    assert len(source) == 5 and len(source[0].frames) == 8
    batch = next(pipeline.make_iterator(pipeline.make_dataset(source, SMALL, 4, seed=0)))
    assert batch["frames"].shape == (4, 3, 40, 40, 3) and batch["frames"].dtype == np.uint8
    assert batch["masks"].shape == (4, 3, 40, 40) and batch["object_valid"].shape == (4, 5)
    for masks, valid in zip(batch["masks"], batch["object_valid"], strict=True):
        slots = set(np.flatnonzero(valid)) - {0}
        assert valid[0] and slots == set(range(1, len(slots) + 1))  # contiguous 1..O
        assert set(np.unique(masks[0])) - {0, 255} == slots  # the objects of the first frame
        assert set(np.unique(masks)) - {0, 255} <= slots


@pytest.mark.parametrize("sampling", ["triplet", "clip", "static"])
def test_frames_and_masks_stay_aligned(sampling):
    rng = np.random.default_rng(0)
    videos = [colour_coded_video(rng) for _ in range(3)]
    config = pipeline.SampleConfig(
        sampling=sampling,
        num_frames=3 if sampling == "triplet" else 4,
        crop_size=(40, 40),
        max_objects=4,
        photometric=False,
        prior=True,
    )
    batch = next(pipeline.make_iterator(pipeline.make_dataset(videos, config, 3, seed=1)))
    for frames, masks in zip(batch["frames"], batch["masks"], strict=True):
        # Pixels whose 3x3 neighbourhood is one object must have a colour near that object's.
        uniform = np.ones_like(masks, bool)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                uniform &= np.roll(masks, (dy, dx), axis=(1, 2)) == masks
        colour_ids = np.argmin(
            np.abs(frames[..., None, :].astype(int) - COLOURS.astype(int)).sum(-1), axis=-1
        )
        # Ids were renumbered, so check that each object has one colour of its own, and that
        # background (including objects dropped from the sample) never has an object's colour.
        colour_of = {}
        for k in set(np.unique(masks)) - {0, 255}:
            colours, counts = np.unique(colour_ids[uniform & (masks == k)], return_counts=True)
            if counts.size == 0:  # only a sliver of the object is in view: nothing to check
                continue
            assert counts.max() > 0.99 * counts.sum() and colours[counts.argmax()] > 0
            colour_of[k] = colours[counts.argmax()]
        assert len(set(colour_of.values())) == len(colour_of)
        background = colour_ids[uniform & (masks == 0)]
        assert np.mean(np.isin(background, list(colour_of.values()))) < 0.01
    assert batch["prior"].shape == batch["masks"].shape


def test_same_seed_same_batches_and_exact_resume(synthetic_root):
    source = DavisFolderSource(synthetic_root, "train")
    dataset = pipeline.make_dataset(source, SMALL, 2, seed=3)
    it = pipeline.make_iterator(dataset)
    first = [next(it) for _ in range(3)]
    state = it.get_state()
    expected = [next(it) for _ in range(4)]  # crosses an epoch boundary (5 videos, batch 2)
    again = pipeline.make_iterator(pipeline.make_dataset(source, SMALL, 2, seed=3))
    np.testing.assert_array_equal(next(again)["frames"], first[0]["frames"])
    resumed = pipeline.make_iterator(pipeline.make_dataset(source, SMALL, 2, seed=3))
    resumed.set_state(state)
    for want, got in zip(expected, [next(resumed) for _ in range(4)], strict=True):
        for key in want:
            np.testing.assert_array_equal(want[key], got[key])
    other = next(pipeline.make_iterator(pipeline.make_dataset(source, SMALL, 2, seed=4)))
    assert not np.array_equal(other["frames"], first[0]["frames"])


def test_worker_processes_give_the_same_batches(synthetic_root):
    source = DavisFolderSource(synthetic_root, "train")
    dataset = pipeline.make_dataset(source, SMALL, 2, seed=5)
    local = pipeline.make_iterator(dataset)
    workers = pipeline.make_iterator(dataset, workers=2)
    for _ in range(3):
        np.testing.assert_array_equal(next(local)["masks"], next(workers)["masks"])


def test_hosts_take_their_slices_of_the_same_global_batches(synthetic_root):
    """Two hosts of batch 2: host 0's batch i and host 1's are global batch i of one host with
    batch 4, in that order, so training does not depend on the number of hosts."""
    source = DavisFolderSource(synthetic_root, "train")
    config = pipeline.SampleConfig(crop_size=(16, 16), max_objects=4, flip=False)
    whole = pipeline.make_dataset(source, config, 4, 0)
    hosts = [pipeline.make_dataset(source, config, 2, 0, shard, 2) for shard in range(2)]
    for i in range(3):
        for key in ("frames", "masks", "object_valid"):
            together = np.concatenate([hosts[0][i][key], hosts[1][i][key]])
            np.testing.assert_array_equal(together, whole[i][key])
    assert not np.array_equal(hosts[0][0]["frames"], hosts[1][0]["frames"])


def test_global_batch_on_an_8_device_mesh(synthetic_root):
    assert jax.device_count() == 8
    mesh = sharding.make_mesh()
    source = DavisFolderSource(synthetic_root, "train")
    local = next(pipeline.make_iterator(pipeline.make_dataset(source, SMALL, 8, seed=0)))
    batch = sharding.global_batch(local, mesh)
    assert batch["frames"].shape == (8, 3, 40, 40, 3)
    assert len(batch["frames"].addressable_shards) == 8
    for shard in batch["masks"].addressable_shards:
        np.testing.assert_array_equal(np.asarray(shard.data), local["masks"][shard.index])
    fsdp = sharding.make_mesh(data=4, fsdp=2)
    assert fsdp.shape == {"data": 4, "fsdp": 2}
    with pytest.raises(ValueError, match="does not match"):
        sharding.make_mesh(data=3, fsdp=2)


def test_image_folder_and_decoders(tmp_path):
    rng = np.random.default_rng(2)
    (tmp_path / "images").mkdir()
    for name in "ab":
        ids = np.zeros((30, 40), np.uint8)
        ids[5:20, 10:30] = 1
        Image.fromarray(COLOURS[ids]).save(tmp_path / "images" / f"{name}.png")
        write_mask(tmp_path / "masks" / f"{name}.png", ids)
    source = ImageFolderSource(tmp_path / "images", tmp_path / "masks")
    assert len(source) == 2 and len(source[0].frames) == 1
    assert decode_frame(source[0].frames[0]).shape == (30, 40, 3)
    assert decode_mask(source[0].masks[0]).max() == 1
    config = pipeline.SampleConfig(sampling="static", num_frames=3, crop_size=(24, 24))
    batch = next(
        pipeline.make_iterator(pipeline.make_dataset(source, config, 2, seed=int(rng.integers(9))))
    )
    assert batch["frames"].shape == (2, 3, 24, 24, 3)
    (tmp_path / "masks" / "b.png").unlink()
    with pytest.raises(FileNotFoundError, match="b.png"):
        ImageFolderSource(tmp_path / "images", tmp_path / "masks")


def test_tfds_source_reads_a_built_dataset(tmp_path, synthetic_root):
    from vos_jax.data.build import build_dataset
    from vos_jax.data.sources import TfdsVideoSource

    build_dataset("davis_vos", "2017_480p", synthetic_root, tmp_path / "tfds")
    source = TfdsVideoSource("davis_vos/2017_480p", "train", tmp_path / "tfds")
    folder = {r.name: r for r in DavisFolderSource(synthetic_root, "train")}
    assert len(source) == len(folder)
    for record in source:
        expected = folder[record.name]
        assert record.frames[0] == expected.frames[0].read_bytes()  # JPEG bytes passed through
        np.testing.assert_array_equal(
            decode_mask(record.masks[-1]), decode_mask(expected.masks[-1])
        )
    batch = next(pipeline.make_iterator(pipeline.make_dataset(source, SMALL, 2, seed=0)))
    assert batch["frames"].shape == (2, 3, 40, 40, 3)


def test_named_sequences_and_merged_objects(synthetic_root):
    """`sequences` picks videos by name (an unknown one is named in the error); `merge_objects`
    makes every object of a sample object 1 (a portrait's person of several people)."""
    names = [r.name for r in DavisFolderSource(synthetic_root, "train")]
    source = DavisFolderSource(synthetic_root, "train", sequences=(names[3], names[1]))
    assert [r.name for r in source] == [names[1], names[3]]
    with pytest.raises(ValueError, match=r"data.sequences: \['nobody'\] not in"):
        DavisFolderSource(synthetic_root, "train", sequences=("nobody",))
    merged = pipeline.SampleConfig(crop_size=(40, 40), max_objects=4, merge_objects=True)
    batch = next(pipeline.make_iterator(pipeline.make_dataset(source, merged, 4, seed=0)))
    assert set(np.unique(batch["masks"])) <= {0, 1, 255} and batch["masks"].max() == 1
    assert not batch["object_valid"][:, 2:].any()
