"""The model thread's shrink of decoded pixels gives Pillow's picture, at the size the answers map from."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from model.input_image import fitted_size, to_input
from serving.images import decode_image, limit_side, to_pixels, to_tensor


@pytest.mark.parametrize("size, max_side, fitted", [
    ((768, 576), 640, (640, 480)),
    ((576, 768), 640, (480, 640)),
    ((1352, 900), 640, (640, 426)),
    ((640, 480), 640, (640, 480)),   # at the side already: untouched
    ((320, 320), 640, (320, 320)),   # smaller: never enlarged
    ((5000, 3), 640, (640, 1)),      # a sliver keeps one pixel
    ((3000, 1500), 0, (3000, 1500)),  # 0: no limit
])
def test_fitted_size_is_the_longest_side_at_most_the_limit(size, max_side, fitted):
    assert fitted_size(*size, max_side) == fitted
    assert limit_side(Image.new("RGB", size), max_side).size == fitted


@pytest.mark.parametrize("name", ["darknet_dog.jpg", "motorcycle_left.png", "robin.jpg"])
def test_the_shrunk_pixels_are_pillows_within_a_level(shared_dir, name):
    photo = decode_image((shared_dir / "eval" / "images" / name).read_bytes(), 10**8)
    expected = to_tensor(limit_side(photo, 640))
    pixels = to_pixels(photo)
    assert pixels.dtype == torch.uint8 and tuple(pixels.shape) == (3, photo.height, photo.width)
    got = to_input(pixels, 640)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    difference = (got - expected).abs()
    assert difference.max().item() <= 2 / 255 + 1e-6, difference.max().item()
    assert difference.mean().item() < 0.5 / 255, difference.mean().item()


def test_pixels_are_a_copy_the_request_may_drop_and_scaling_leaves_them_unchanged():
    image = Image.fromarray(np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3))
    pixels = to_pixels(image)
    before = pixels.clone()
    scaled = to_input(pixels, 640)
    assert torch.equal(pixels, before)
    assert torch.allclose(scaled * 255, before.float())
