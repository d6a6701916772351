"""COCO's class names as the service answers them, and the placeholders it never answers.

torchvision's detection weights carry a 91-entry list with ``__background__``
at 0 and ``N/A`` for the ids COCO never used; ``exporters.coco_names`` reads it
from torchvision at build time, and a serving process reads an export's
categories from its sidecar. ``COCO_CLASSES`` is the 80 real names in that
list's order, written out so the API's request fields can name them
(``http_service.request_fields``) without importing torchvision; a test checks
it against torchvision's.
"""

from __future__ import annotations

PLACEHOLDERS = frozenset({"__background__", "N/A"})

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)
