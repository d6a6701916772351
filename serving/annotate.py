"""Draw a prediction onto its image: tinted masks, boxes, and "label score" tags.

Drawn on the upright original, shrunk to at most ``serving.images.PREVIEW_MAX_SIDE`` so an annotated
PNG stays a few megabytes however large the original was.
"""

from __future__ import annotations

import io
import zlib

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from serving.pipeline import Prediction


_PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40),
)
MASK_ALPHA = 0.45


def colour_for(label: str) -> tuple[int, int, int]:
    """A stable colour per class name, so the same class looks the same in every picture."""
    return _PALETTE[zlib.crc32(label.encode()) % len(_PALETTE)]


def _tint(image: Image.Image, prediction: Prediction) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32).copy()
    for detection in reversed(prediction.detections):
        where = prediction.mask_at(detection, image.size)
        if where is None:
            continue
        pixels[where] = pixels[where] * (1 - MASK_ALPHA) + np.array(colour_for(detection.label)) * MASK_ALPHA
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def annotate(prediction: Prediction) -> Image.Image:
    image = _tint(prediction.original, prediction)
    draw = ImageDraw.Draw(image)
    side = max(image.size)
    line = max(2, side // 320)
    font = ImageFont.load_default(size=max(12, side // 50))
    for detection in reversed(prediction.detections):
        colour = colour_for(detection.label)
        x1, y1, x2, y2 = prediction.box_at(detection, image.size)
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=line)
        text = f"{detection.label} {detection.score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tag_height = bottom - top + 2 * line
        tag_top = y1 - tag_height if y1 - tag_height >= 0 else y1
        draw.rectangle((x1, tag_top, x1 + right - left + 2 * line, tag_top + tag_height), fill=colour)
        draw.text((x1 + line - left, tag_top + line - top), text, fill=(0, 0, 0), font=font)
    return image


def annotated_png(prediction: Prediction) -> bytes:
    buffer = io.BytesIO()
    annotate(prediction).save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()
