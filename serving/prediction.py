"""A finished prediction and how its detections map onto pictures of any size (the answers' shapes).

Every transport builds its answer from a :class:`Prediction`: boxes in pixels of the upright
original (``image_box``), masks as COCO RLE at that size (``image_mask_rle``), and the stage timings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from model.detector import Detection, Detector
from serving.rle import encode


@dataclass(frozen=True)
class Prediction:
    """Detections on the (possibly shrunk) picture the model saw, ``model_size`` (width, height).

    ``original`` is the upright decoded picture, shrunk to at most
    ``PREVIEW_MAX_SIDE`` (the full-size decode is freed as soon as the model's
    copy exists), and ``original_size`` the upright size of
    the image as stored; ``box_at`` and ``mask_at`` map a detection onto a
    picture of any size (the stored size for JSON answers, a bounded copy for
    annotated PNGs).
    """

    detections: list[Detection]
    model_size: tuple[int, int]
    original: Image.Image
    original_size: tuple[int, int]
    detector: Detector
    timings: dict[str, float] = field(default_factory=dict)
    # The images in the forward this one ran in (model.batching).
    batch_size: int = 1

    @property
    def labels(self) -> list[str]:
        return [d.label for d in self.detections]

    def box_at(self, detection: Detection, size: tuple[int, int]) -> list[float]:
        width, height = size
        scale = width / self.model_size[0]
        x1, y1, x2, y2 = (value * scale for value in detection.box)
        return [round(min(max(x1, 0.0), width), 2), round(min(max(y1, 0.0), height), 2),
                round(min(max(x2, 0.0), width), 2), round(min(max(y2, 0.0), height), 2)]

    def mask_at(self, detection: Detection, size: tuple[int, int]) -> np.ndarray | None:
        if detection.mask is None:
            return None
        mask = detection.mask.numpy()
        if size != self.model_size:
            mask = np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST))
        return mask

    def image_box(self, detection: Detection) -> list[float]:
        """The box in pixels of the upright original image."""
        return self.box_at(detection, self.original_size)

    def image_mask_rle(self, detection: Detection) -> dict[str, object] | None:
        """The mask as COCO RLE at the original image's size."""
        mask = self.mask_at(detection, self.original_size)
        return None if mask is None else encode(mask)
