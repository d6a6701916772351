"""torchvision's Mask R-CNN (ResNet-50 FPN v2), wrapped for TorchScript export.

The service answers with labels only, so the exported module drops the mask
branch (RoIHeads skips it when its mask modules are None): the box branch
alone decides labels and scores, and the mask head's per-detection
convolutions and paste-back are pure cost for this answer.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights, maskrcnn_resnet50_fpn_v2
from torchvision.models.detection.mask_rcnn import MaskRCNN

WEIGHTS = MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1
DEFAULT_SCORE_THRESHOLD = 0.75


def categories() -> list[str]:
    """torchvision's 91-entry COCO list; Mask R-CNN labels index it directly."""
    return list(WEIGHTS.meta["categories"])


def build_eager(source: str, weights_file: Path | None = None) -> MaskRCNN:
    """An eval-mode Mask R-CNN from torchvision's download, a local state_dict, or random init.

    ``source`` is ``"pretrained"`` (torchvision fetches ``COCO_V1`` into its
    cache: needs network access), ``"file"`` or ``"random"``. Random init also
    skips the ImageNet backbone download so it works fully offline.
    """
    if source == "pretrained":
        model = maskrcnn_resnet50_fpn_v2(weights=WEIGHTS)
    else:
        model = maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=len(categories()))
        if source == "file":
            if weights_file is None:
                raise ValueError("source 'file' needs a weights file")
            state = torch.load(weights_file, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        elif source != "random":
            raise ValueError(f"unknown Mask R-CNN source {source!r}")
    return model.eval()


def without_masks(model: MaskRCNN) -> MaskRCNN:
    """Drop the mask branch in place; boxes, labels and scores are unchanged by it."""
    heads = model.roi_heads
    heads.mask_roi_pool = None
    heads.mask_head = None
    heads.mask_predictor = None
    return model


class MaskRCNNDetector(nn.Module):
    """The export's call signature, shared with every detector: one image in, three tensors out."""

    def __init__(self, model: MaskRCNN):
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        _, detections = self.model([image])
        found = detections[0]
        return found["boxes"], found["labels"], found["scores"]


def build_scripted(model: MaskRCNN) -> torch.jit.ScriptModule:
    return torch.jit.script(MaskRCNNDetector(without_masks(model)).eval())
