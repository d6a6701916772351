"""torchvision's Mask R-CNN (ResNet-50 FPN v2), wrapped for TorchScript export.

Most answers need labels only, so the exported ``forward`` runs the box
branch alone (RoIHeads skips masks when its mask modules are None): the mask
head's per-detection convolutions and paste-back are pure cost for a label.
The mask modules are kept beside it, and ``detect_masks`` runs them on the
same features for the callers that ask for masks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import torch
from torch import Tensor, nn
from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights, maskrcnn_resnet50_fpn_v2
from torchvision.models.detection.mask_rcnn import MaskRCNN
from torchvision.models.detection.roi_heads import maskrcnn_inference

from exporters.compute import add_numerics_switch, to_compute

WEIGHTS = MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1
# bf16 under CPU autocast for the whole model: its RPN and box heads are too much of the work
# to leave in fp32 (model.precision).
BF16_MODE = "autocast"
DEFAULT_SCORE_THRESHOLD = 0.75
DEFAULT_MIN_SIZE = 800
DEFAULT_MAX_SIZE = 1333


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


def set_input_size(model: MaskRCNN, min_size: int, max_size: int) -> MaskRCNN:
    """The resize policy inside the model: shorter side to ``min_size``, longer side at most ``max_size``.

    Compute grows with the pixel count, so this is the main speed/accuracy knob
    (torchvision's defaults are 800/1333, what COCO_V1 was trained at).
    """
    if not 0 < min_size <= max_size:
        raise ValueError(f"need 0 < min_size <= max_size, got {min_size}/{max_size}")
    model.transform.min_size = (min_size,)
    model.transform.max_size = max_size
    return model


class MaskRCNNDetector(nn.Module):
    """The export's call signature, shared with every detector, plus ``detect_masks``.

    The mask modules are moved out of RoIHeads so its own forward (and so
    ``forward`` here) never computes masks; ``detect_masks`` runs them on the
    detected boxes exactly as RoIHeads would have.
    """

    def __init__(self, model: MaskRCNN):
        super().__init__()
        heads = model.roi_heads
        self.mask_roi_pool = heads.mask_roi_pool
        self.mask_head = heads.mask_head
        self.mask_predictor = heads.mask_predictor
        heads.mask_roi_pool = None
        heads.mask_head = None
        heads.mask_predictor = None
        self.model = model
        add_numerics_switch(self)

    def _detect(self, image: Tensor, with_masks: bool, min_score: float) -> Dict[str, Tensor]:
        original_size = (image.shape[-2], image.shape[-1])
        images, _ = self.model.transform([image])
        features = self.model.backbone(to_compute(images.tensors, self.compute_dtype, self.channels_last))
        for level, feature in features.items():
            features[level] = feature.float().contiguous()
        proposals, _ = self.model.rpn(images, features)
        detections, _ = self.model.roi_heads(features, proposals, images.image_sizes)
        if with_masks:
            found = detections[0]
            keep = found["scores"] >= min_score
            for key in ("boxes", "labels", "scores"):
                found[key] = found[key][keep]
            pooled = self.mask_roi_pool(features, [found["boxes"]], images.image_sizes)
            logits = self.mask_predictor(self.mask_head(pooled))
            found["masks"] = maskrcnn_inference(logits, [found["labels"]])[0]
        return self.model.transform.postprocess(detections, images.image_sizes, [original_size])[0]

    def forward(self, image: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        found = self._detect(image, False, 0.0)
        return found["boxes"], found["labels"], found["scores"]

    @torch.jit.export
    def detect_masks(self, image: Tensor, min_score: float = 0.0) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Detections scoring at least ``min_score``, with mask probabilities [N, 1, H, W] at the image's size.

        The mask head and the paste-back run per detection, so detections the
        caller's threshold would drop are dropped before, not after, that work.
        """
        found = self._detect(image, True, min_score)
        return found["boxes"], found["labels"], found["scores"], found["masks"]


def build_scripted(model: MaskRCNN) -> torch.jit.ScriptModule:
    return torch.jit.script(MaskRCNNDetector(model).eval())
