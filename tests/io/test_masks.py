"""Palette PNG masks: the DAVIS palette, round trips, and the formats that are refused."""

import numpy as np
import pytest
from PIL import Image

from tests.shared_data import DAVIS_MINI, shared_path
from vos_jax.io.masks import MaskFileError, davis_palette, read_mask, write_mask


def test_palette_is_the_one_of_real_davis_annotations():
    path = shared_path(DAVIS_MINI) / "DAVIS/Annotations/480p/blackswan/00000.png"
    with Image.open(path) as image:
        real = np.array(image.getpalette()[:768], np.uint8).reshape(-1, 3)
    np.testing.assert_array_equal(davis_palette()[: len(real)], real)
    np.testing.assert_array_equal(davis_palette()[255], [224, 224, 192])  # DAVIS void colour


def test_round_trip_keeps_ids(tmp_path):
    ids = np.random.default_rng(0).integers(0, 256, (17, 23)).astype(np.uint8)
    write_mask(tmp_path / "a" / "m.png", ids)
    np.testing.assert_array_equal(read_mask(tmp_path / "a" / "m.png"), ids)


def test_refuses_rgb_and_non_binary_grayscale(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(MaskFileError, match="rgb.png.*palette"):
        read_mask(tmp_path / "rgb.png")
    Image.fromarray(np.array([[0, 1], [2, 0]], np.uint8), mode="L").save(tmp_path / "ids.png")
    with pytest.raises(MaskFileError, match="0 and 255"):
        read_mask(tmp_path / "ids.png", allow_grayscale=True)
    Image.fromarray(np.array([[0, 255]], np.uint8), mode="L").save(tmp_path / "bin.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "bin.png", allow_grayscale=True), [[0, 1]])
    with pytest.raises(MaskFileError, match="not found"):
        read_mask(tmp_path / "missing.png")
