"""supervisely_person on a small synthetic tree in the official Supervisely layout (ds*/img,
ds*/ann/*.json; bitmap objects as base64 zlib PNGs placed at their origin, polygon objects with
holes; several people in one image merged into object 1), built through the CLI path and read
back with tfds.data_source; layout errors name the file (the builder's readers, in-process: the
build above shows they run inside it)."""

import base64
import hashlib
import json
import zlib

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from tfds_builders import DatasetLayoutError
from tfds_builders.supervisely_person.supervisely_person_dataset_builder import (
    VAL_EVERY,
    example,
    image_annotation_pairs,
)
from vos_jax.data.build import build_dataset


def _bitmap(mask: np.ndarray, rgba: bool) -> str:
    """Supervisely's encoding: base64(zlib(PNG)), the mask in the alpha or only channel."""
    if rgba:
        image = np.zeros((*mask.shape, 4), np.uint8)
        image[..., 3] = mask * 255
    else:
        image = mask.astype(np.uint8) * 255
    ok, png = cv2.imencode(".png", image)
    assert ok
    return base64.b64encode(zlib.compress(png.tobytes())).decode()


def _tree(root, count=24):
    """Images with two bitmap people (one RGBA, one grey) and a polygon person with a hole;
    -> {relative image path: expected person mask}."""
    rng = np.random.default_rng(0)
    expected = {}
    for k in range(count):
        ds = root / f"ds{k % 2 + 1}"
        (ds / "img").mkdir(parents=True, exist_ok=True)
        (ds / "ann").mkdir(exist_ok=True)
        h, w = 40 + k % 3 * 8, 56
        name = f"img{k:03d}.png" if k % 2 else f"img{k:03d}.jpg"
        yy, xx = np.mgrid[0:h, 0:w]
        base = rng.integers(0, 120, 3)
        pixels = (base + np.stack([2 * yy, 2 * xx, yy + xx], -1)).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(ds / "img" / name, quality=95)
        mask = np.zeros((h, w), np.uint8)
        a = np.zeros((10, 8), np.uint8)
        a[2:9, 1:7] = 1
        b = np.ones((6, 12), np.uint8)
        mask[5:15, 3:11] |= a
        mask[20:26, 30:42] |= b
        polygon = [[40, 2], [54, 2], [54, 16], [40, 16]]
        hole = [[45, 6], [49, 6], [49, 10], [45, 10]]
        layer = np.zeros_like(mask)
        cv2.fillPoly(layer, [np.array(polygon, np.int32)], 1)
        cv2.fillPoly(layer, [np.array(hole, np.int32)], 0)
        mask |= layer
        objects = [
            {"classTitle": "person_bmp", "bitmap": {"data": _bitmap(a, True), "origin": [3, 5]}},
            {"classTitle": "person_bmp", "bitmap": {"data": _bitmap(b, False), "origin": [30, 20]}},
            {"classTitle": "person_poly", "points": {"exterior": polygon, "interior": [hole]}},
        ]
        annotation = {"size": {"height": h, "width": w}, "objects": objects}
        (ds / "ann" / f"{name}.json").write_text(json.dumps(annotation))
        expected[f"{ds.name}/img/{name}"] = (mask, pixels)
    return expected


def test_builds_merged_person_masks_in_a_train_and_val_split(tmp_path):
    manual = tmp_path / "manual"
    expected = _tree(manual)
    data = tmp_path / "data"
    splits = build_dataset("supervisely_person", "default", manual, data)
    assert splits == ["train", "val"]
    seen = {}
    for split in splits:
        source = tfds.data_source("supervisely_person/default", data_dir=data, split=split)
        for record in source:
            key = record["name"].decode()
            digest = int(hashlib.sha1(key.encode()).hexdigest(), 16)
            assert (split == "val") == (digest % VAL_EVERY == 0)
            seen[key] = record
    assert sorted(seen) == sorted(expected)
    for key, record in seen.items():
        mask, pixels = expected[key]
        np.testing.assert_array_equal(record["masks"][0][..., 0], mask)
        assert list(record["object_ids"]) == [1] and bool(record["has_mask"][0])
        frame = record["frames"][0]
        assert frame.shape == pixels.shape
        assert np.abs(frame.astype(int) - pixels).mean() < 3  # JPEG (quality 95) of a gradient


def _one(tmp_path, annotation=None, bitmap_origin=(3, 5)):
    manual = tmp_path / "manual"
    _tree(manual, count=1)
    path = manual / "ds1/ann/img000.jpg.json"
    data = json.loads(path.read_text())
    if annotation is not None:
        data = annotation
    else:
        data["objects"][0]["bitmap"]["origin"] = list(bitmap_origin)
    path.write_text(json.dumps(data))
    return manual, path


@pytest.mark.parametrize(
    "case, message",
    [("outside", "leaves the 56x40 image"), ("size", "size"), ("missing", "no annotation"),
     ("garbled", "does not decode"), ("empty", "no <dataset>/img/ folder")],
)  # fmt: skip
def test_layout_errors_name_the_file(tmp_path, case, message):
    manual, path = _one(tmp_path, bitmap_origin=(50, 5) if case == "outside" else (3, 5))
    if case == "size":
        data = json.loads(path.read_text())
        data["size"]["height"] = 99
        path.write_text(json.dumps(data))
    elif case == "missing":
        path.unlink()
    elif case == "garbled":
        data = json.loads(path.read_text())
        data["objects"][0]["bitmap"]["data"] = base64.b64encode(b"not zlib").decode()
        path.write_text(json.dumps(data))
    elif case == "empty":
        for p in sorted(manual.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        manual.mkdir(exist_ok=True)
        (manual / "README.txt").write_text("not the dataset")
    with pytest.raises(DatasetLayoutError, match=message):  # what the build raises, in-process
        for image, annotation in image_annotation_pairs(manual):
            example(image.name, image, annotation)
