"""Load an exported detector and turn its raw output into named, thresholded detections.

Whatever was exported (Mask R-CNN or the offline CenterNet), the module takes
one RGB image tensor and returns boxes, integer labels and scores; the
sidecar names the labels. Inference is serialised per process with a lock:
concurrent requests still fetch and decode in parallel, but two forward
passes never fight over the same few cores.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchvision  # noqa: F401  (registers the nms/roi_align ops Mask R-CNN's TorchScript calls)

from model import precision as numerics
from model.card import MODEL_FILE, ModelCard, sha256_of
from model.coco import PLACEHOLDERS

log = logging.getLogger(__name__)


MASK_THRESHOLD = 0.5


@dataclass(frozen=True)
class Detection:
    """One instance; ``box`` and ``mask`` are in the coordinates of the tensor the model was given."""

    label: str
    score: float
    box: tuple[float, float, float, float]
    mask: torch.Tensor | None = field(default=None, compare=False, repr=False)


class Detector:
    def __init__(
        self, module: torch.jit.ScriptModule, card: ModelCard, score_threshold: float | None = None,
        precision: str = numerics.FP32,
    ):
        self._module = module
        self.card = card
        self.score_threshold = card.score_threshold if score_threshold is None else score_threshold
        self.precision = precision
        self._lock = threading.Lock()
        self.warm = False

    @classmethod
    def load(cls, directory: Path, score_threshold: float | None = None, precision: str = "auto") -> "Detector":
        """Load and verify an export, then put it in the numerics chosen for this CPU.

        A checksum mismatch means a half-written or swapped file. ``precision``
        is DETECTOR_PRECISION (see model.precision).
        """
        directory = Path(directory)
        card = ModelCard.read(directory)
        model_path = directory / MODEL_FILE
        actual = sha256_of(model_path)
        if actual != card.sha256:
            raise RuntimeError(f"{model_path} sha256 {actual} does not match its sidecar ({card.sha256})")
        module = torch.jit.load(str(model_path), map_location="cpu").eval()
        choice = numerics.choose(card, precision, numerics.cpu_flags())
        numerics.apply(module, card.precision_module, choice.precision)
        detector = cls(module, card, score_threshold, choice.precision)
        if card.random_init:
            log.warning(
                "SERVING AN UNTRAINED MODEL: %s was exported from random weights; its answers are meaningless",
                card.name,
            )
        log.info(
            "serving model %s (%s, weights %s, licence: %s), score threshold %.3f, %s (%s)",
            card.name, card.architecture, card.weights, card.license or "not recorded", detector.score_threshold,
            choice.precision, choice.reason,
        )
        return detector

    def warm_up(self) -> None:
        """One forward pass so the first caller does not pay for lazy initialisation."""
        self.raw(torch.full((3, 480, 640), 0.5))
        self.warm = True

    @property
    def supports_masks(self) -> bool:
        return self.card.masks and hasattr(self._module, "detect_masks")

    def raw(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with self._lock, torch.inference_mode():
            return self._module(image)

    def raw_with_masks(
        self, image: torch.Tensor, min_score: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if not self.supports_masks:
            raise RuntimeError(f"{self.card.name} has no mask branch")
        with self._lock, torch.inference_mode():
            return self._module.detect_masks(image, min_score)

    def detect(
        self, image: torch.Tensor, threshold: float | None = None, with_masks: bool = False
    ) -> list[Detection]:
        """Detections at or above the threshold, highest score first, placeholders dropped."""
        threshold = self.score_threshold if threshold is None else threshold
        if with_masks:
            boxes, labels, scores, probabilities = self.raw_with_masks(image, threshold)
            masks: list[torch.Tensor | None] = list(probabilities[:, 0] >= MASK_THRESHOLD)
        else:
            boxes, labels, scores = self.raw(image)
            masks = [None] * len(labels)
        names = self.card.categories
        found = []
        for box, label, score, mask in zip(boxes.tolist(), labels.tolist(), scores.tolist(), masks):
            if score < threshold or not 0 <= label < len(names) or names[label] in PLACEHOLDERS:
                continue
            found.append(Detection(names[label], float(score), tuple(box), mask))
        found.sort(key=lambda d: d.score, reverse=True)
        return found
