"""The tracker's crops against OpenCV, the library the official SiamMask tracker crops with:
`subwindow` equals a NumPy + `cv2.resize` rendering of the official `get_subwindow_tracking`
pixel for pixel, `paste_back` the official `crop_back` (`cv2.warpAffine`) to float32 rounding."""

import cv2
import jax
import numpy as np
import pytest

from vos_jax.ops.crops import crop_box, paste_back, subwindow


def official_subwindow(image, centre, out, size, average):
    """The official crop: a size x size window centred (Python round) on `centre`, the frame's
    mean colour (written into uint8: truncated) outside the frame, cv2.resize to out x out."""
    c = (size + 1) / 2
    x0, y0 = round(centre[0] - c), round(centre[1] - c)
    pad = max(0, -x0, -y0, x0 + size - image.shape[1], y0 + size - image.shape[0])
    canvas = np.empty((image.shape[0] + 2 * pad, image.shape[1] + 2 * pad, 3), np.uint8)
    canvas[:] = average  # numpy truncates the float mean into uint8, as the official code
    canvas[pad : pad + image.shape[0], pad : pad + image.shape[1]] = image
    patch = canvas[y0 + pad : y0 + pad + size, x0 + pad : x0 + pad + size]
    return patch if size == out else cv2.resize(patch, (out, out))


def official_crop_back(crop, sub_box, height, width):
    """The official `crop_back` of the refined mask with its back box."""
    s = crop.shape[0] / sub_box[2]
    back = [-sub_box[0] * s, -sub_box[1] * s, width * s, height * s]
    a, b = (width - 1) / back[2], (height - 1) / back[3]
    mapping = np.array([[a, 0, -a * back[0]], [0, b, -b * back[1]]], np.float64)
    return cv2.warpAffine(
        crop, mapping, (width, height), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=-1,
    )  # fmt: skip


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.integers(0, 256, (120, 200, 3)).astype(np.float32), (0, 0), 3)
    return np.clip(smooth * 3 - 250, 0, 255).astype(np.uint8)  # texture with saturated parts


def test_subwindow_equals_opencv_pixel_for_pixel(frame):
    crop = jax.jit(subwindow, static_argnums=3)
    rng = np.random.default_rng(1)
    average = frame.mean(axis=(0, 1))
    sizes = [1, 2, 7, 126, 127, 128, 254, 255, 256, 311, 600, 1659, 4000]
    for i, size in enumerate(sizes + list(rng.integers(1, 3000, 20))):
        out = (127, 255)[i % 2]
        centre = rng.uniform(-150, 350, 2) if i % 3 else np.array([100.5, 60.5])
        want = official_subwindow(frame, centre, out, int(size), average)
        got = np.asarray(crop(frame, centre, int(size), out, average))
        mismatches = np.count_nonzero(got != want)
        assert mismatches == 0, f"size {size} -> {out} at {centre}: {mismatches} values differ"


def test_paste_back_equals_opencv(frame):
    rng = np.random.default_rng(2)
    mask = cv2.GaussianBlur(rng.random((127, 127)).astype(np.float32), (0, 0), 4)
    paste = jax.jit(paste_back, static_argnums=(2, 3))
    for box in [(20.3, 10.7, 100.2), (-30.5, -10.25, 300.0), (150.1, 90.9, 60.4)]:
        sub_box = np.array([box[0], box[1], box[2], box[2]])
        want = official_crop_back(mask, sub_box, *frame.shape[:2])
        got = np.asarray(paste(mask, sub_box, *frame.shape[:2]))
        np.testing.assert_allclose(got, want, atol=1e-4)
        assert np.any(want == -1) or box[2] > 250  # the crop's outside is the border value


def test_crop_box_maps_corners_to_corner_pixels():
    image = np.arange(20 * 30, dtype=np.float32).reshape(20, 30, 1)
    out = np.asarray(crop_box(image, np.array([3.0, 2.0, 13.0, 12.0]), 11, padding=-5.0))
    np.testing.assert_allclose(out[..., 0], image[2:13, 3:14, 0])  # one pixel per sample
    outside = np.asarray(crop_box(image, np.array([-10.0, -10.0, -2.0, -2.0]), 5, padding=-5.0))
    np.testing.assert_array_equal(outside, -5.0)
