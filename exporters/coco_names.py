"""COCO category names exactly as torchvision spells them, for exports and their checks.

torchvision's detection weights carry a 91-entry list with ``__background__``
at 0 and ``N/A`` for the ids COCO never used (``model.coco.PLACEHOLDERS``).
This imports torchvision's Python package, so it stays out of the serving
processes (``model.vision_ops``).
"""

from __future__ import annotations

from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights

from model.coco import PLACEHOLDERS

TORCHVISION_CATEGORIES: tuple[str, ...] = tuple(MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1.meta["categories"])

COCO_80: tuple[str, ...] = tuple(name for name in TORCHVISION_CATEGORIES if name not in PLACEHOLDERS)
