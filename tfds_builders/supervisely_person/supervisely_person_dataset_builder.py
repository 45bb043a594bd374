"""supervisely_person: Supervisely Person (Deep Systems, 2018), the public substitute for Google's
portrait data (SPEC section 4), read from the extracted official archive.

Each image becomes a one-frame example with the VOS builders' features (vos_common), so the input
pipeline's static sampling reads it as it reads a DAVIS frame: the JPEG frame (PNG images are
re-encoded as JPEG, quality 95) and its id mask, where every annotated person of the image is
merged into object 1. Annotations are Supervisely JSON: per object a `bitmap` (base64 of a zlib-
compressed PNG whose alpha, or single channel, is the mask, placed at `origin` [x, y]) or a
`polygon` (`points.exterior`, minus `points.interior` holes). There is no official split: `val`
holds the images whose name hashes (sha1) to 0 mod 20, `train` the others.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zlib
from pathlib import Path

import cv2
import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from tfds_builders import vos_common

_EXPECTED = """\
  <manual_dir>/<dataset>/img/<image>.png|.jpg|.jpeg       (dataset: ds1, ds2, ...)
  <manual_dir>/<dataset>/ann/<image>.png.json              (Supervisely JSON: size, objects)"""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
VAL_EVERY = 20


class Builder(tfds.core.GeneratorBasedBuilder):
    """Supervisely Person segmentation (manual download)."""

    name = "supervisely_person"
    code_path = epath.Path(__file__)
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="default", description="all people merged")]
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download "Supervisely Person" from Supervisely (https://supervise.ly/, Datasets library; sign-in
needed) in Supervisely format and extract it into the manual dir:
{_EXPECTED}
"""

    def __init__(self, *, file_format=None, **kwargs):
        super().__init__(file_format=file_format or "array_record", **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=vos_common.video_features(),
            homepage="https://supervise.ly/",
            supervised_keys=None,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = vos_common.manual_dir(dl_manager)
        with vos_common.layout_hint(_EXPECTED):
            pairs = image_annotation_pairs(root)
        splits = {"train": [], "val": []}
        for image, annotation in pairs:
            key = image.relative_to(root).as_posix()
            digest = int(hashlib.sha1(key.encode()).hexdigest(), 16)
            splits["val" if digest % VAL_EVERY == 0 else "train"].append((key, image, annotation))
        return {name: self._generate_examples(items) for name, items in splits.items() if items}

    def _generate_examples(self, items):
        for key, image, annotation in items:
            yield key, example(key, image, annotation)


def image_annotation_pairs(root: Path) -> list[tuple[Path, Path]]:
    """(image, its annotation) for every image under <root>/<dataset>/img/; a missing
    annotation or an empty tree raises DatasetLayoutError naming the path."""
    pairs = []
    for folder in sorted(p for p in root.glob("*/img") if p.is_dir()):
        for image in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            annotation = folder.parent / "ann" / f"{image.name}.json"
            if not annotation.is_file():
                raise vos_common.DatasetLayoutError(f"{image}: no annotation {annotation}")
            pairs.append((image, annotation))
    if not pairs:
        raise vos_common.DatasetLayoutError(f"{root}: no <dataset>/img/ folder with images")
    return pairs


def decode_bitmap(data: str, path: Path) -> np.ndarray:
    """A Supervisely bitmap: base64 of zlib-compressed PNG bytes -> bool [h, w] (the alpha
    channel of an RGBA PNG, else its single channel, non-zero)."""
    try:
        png = zlib.decompress(base64.b64decode(data))
        decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    except (ValueError, zlib.error) as err:
        message = f"{path}: a bitmap that does not decode ({err})"
        raise vos_common.DatasetLayoutError(message) from None
    if decoded is None:
        raise vos_common.DatasetLayoutError(f"{path}: a bitmap that is not a PNG")
    if decoded.ndim == 3 and decoded.shape[2] >= 4:
        return decoded[..., 3] > 0
    if decoded.ndim == 2:
        return decoded > 0
    raise vos_common.DatasetLayoutError(f"{path}: a bitmap of shape {decoded.shape}")


def person_mask(annotation: dict, size: tuple[int, int], path: Path) -> np.ndarray:
    """Every object of a Supervisely annotation merged into one uint8 mask [H, W] (1 = person)."""
    mask = np.zeros(size, np.uint8)
    for obj in annotation.get("objects", []):
        if "bitmap" in obj and obj["bitmap"]:
            bitmap = decode_bitmap(obj["bitmap"]["data"], path)
            x, y = (int(v) for v in obj["bitmap"]["origin"])
            h, w = bitmap.shape
            if x < 0 or y < 0 or y + h > size[0] or x + w > size[1]:
                raise vos_common.DatasetLayoutError(
                    f"{path}: a {w}x{h} bitmap at origin ({x}, {y}) leaves the {size[1]}x"
                    f"{size[0]} image"
                )
            mask[y : y + h, x : x + w] |= bitmap.astype(np.uint8)
        elif obj.get("points", {}).get("exterior"):
            layer = np.zeros(size, np.uint8)
            cv2.fillPoly(layer, [np.round(obj["points"]["exterior"]).astype(np.int32)], 1)
            for hole in obj["points"].get("interior", []):
                cv2.fillPoly(layer, [np.round(hole).astype(np.int32)], 0)
            mask |= layer
        else:
            raise vos_common.DatasetLayoutError(
                f"{path}: object {obj.get('classTitle', '?')!r} has neither a bitmap nor a polygon"
            )
    return mask


def _jpeg(image: Path) -> tuple[bytes, tuple[int, int]]:
    """The image as JPEG bytes (its own if it is one) and its size (H, W)."""
    if image.suffix.lower() in (".jpg", ".jpeg"):
        return vos_common.read_frame(image)
    try:
        with Image.open(image) as img:
            rgb = img.convert("RGB")
    except (OSError, SyntaxError, ValueError) as err:
        raise vos_common.DatasetLayoutError(f"{image}: not a readable image ({err})") from None
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue(), (rgb.height, rgb.width)


def example(key: str, image: Path, annotation_path: Path) -> dict:
    data, size = _jpeg(image)
    try:
        annotation = json.loads(annotation_path.read_text())
    except (OSError, ValueError) as err:
        raise vos_common.DatasetLayoutError(f"{annotation_path}: not JSON ({err})") from None
    declared = annotation.get("size", {})
    if declared and (declared.get("height"), declared.get("width")) != size:
        raise vos_common.DatasetLayoutError(
            f"{annotation_path}: size {declared} but the image {image} is {size[1]}x{size[0]}"
        )
    mask = person_mask(annotation, size, annotation_path)
    ids = [1] if mask.any() else []
    return {
        "name": key,
        "frame_names": [image.stem],
        "frames": [data],
        "masks": [vos_common.encode_mask(mask)],
        "has_mask": [True],
        "object_ids": ids,
        "num_objects": len(ids),
        "height": size[0],
        "width": size[1],
    }
