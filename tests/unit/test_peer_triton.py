"""The peer's own letterbox, decode and NMS follow the service's rules, so the benchmark compares servers, not rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import batched_nms

from harness import peer_triton


@pytest.mark.parametrize("size, shape", [((320, 320), (320, 320)), ((300, 200), (224, 320)),
                                         ((1000, 500), (320, 640)), ((640, 480), (480, 640))])
def test_the_letterbox_shrinks_to_640_never_enlarges_and_pads_to_32(size, shape):
    image = Image.new("RGB", size, (10, 200, 30))
    batch, scale, left, top = peer_triton.letterbox(image)
    assert batch.shape == (1, 3, *shape) and batch.dtype == np.float32
    assert scale == min(1.0, 640 / max(size))
    width, height = round(size[0] * scale), round(size[1] * scale)
    inside = batch[0, :, top: top + height, left: left + width]
    assert np.allclose(inside[:, 0, 0], np.array([10, 200, 30]) / 255.0)
    assert np.allclose(batch[0, :, 0, 0], 114 / 255.0) or (left == 0 and top == 0)


def test_class_wise_nms_keeps_what_torchvision_keeps():
    generator = np.random.default_rng(0)
    centres = generator.uniform(0, 300, (300, 2))
    sizes = generator.uniform(10, 80, (300, 2))
    rows = np.zeros((300, 85), np.float32)
    rows[:, :2], rows[:, 2:4] = centres, sizes
    rows[:, 4] = generator.uniform(0, 1, 300)
    rows[np.arange(300), 5 + generator.integers(0, 3, 300)] = generator.uniform(0.2, 1, 300)
    boxes, classes, scores = peer_triton.decode(rows, threshold=0.3)

    candidates = torch.from_numpy(rows)
    probabilities = candidates[:, 5:] * candidates[:, 4:5]
    best, labels = probabilities.max(1)
    keep = (candidates[:, 4] >= 0.05) & (best >= 0.3)
    corners = torch.cat([candidates[:, :2] - candidates[:, 2:4] / 2, candidates[:, :2] + candidates[:, 2:4] / 2], 1)
    kept = batched_nms(corners[keep], best[keep], labels[keep], 0.45)[:100]  # both answer at most 100
    assert len(scores) == len(kept) == 100
    np.testing.assert_allclose(scores, best[keep][kept].numpy(), rtol=1e-6)
    np.testing.assert_allclose(boxes, corners[keep][kept].numpy(), rtol=1e-5)
    assert classes.tolist() == labels[keep][kept].tolist()
