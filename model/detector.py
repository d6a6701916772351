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
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision  # noqa: F401  (registers the nms/roi_align ops Mask R-CNN's TorchScript calls)

from model.card import MODEL_FILE, ModelCard, sha256_of
from model.coco import PLACEHOLDERS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]


class Detector:
    def __init__(self, module: torch.jit.ScriptModule, card: ModelCard, score_threshold: float | None = None):
        self._module = module
        self.card = card
        self.score_threshold = card.score_threshold if score_threshold is None else score_threshold
        self._lock = threading.Lock()
        self.warm = False

    @classmethod
    def load(cls, directory: Path, score_threshold: float | None = None) -> "Detector":
        """Load and verify an export; a checksum mismatch means a half-written or swapped file."""
        directory = Path(directory)
        card = ModelCard.read(directory)
        model_path = directory / MODEL_FILE
        actual = sha256_of(model_path)
        if actual != card.sha256:
            raise RuntimeError(f"{model_path} sha256 {actual} does not match its sidecar ({card.sha256})")
        module = torch.jit.load(str(model_path), map_location="cpu").eval()
        detector = cls(module, card, score_threshold)
        if card.random_init:
            log.warning(
                "SERVING AN UNTRAINED MODEL: %s was exported from random weights; its answers are meaningless",
                card.name,
            )
        log.info(
            "serving model %s (%s, weights %s), score threshold %.3f",
            card.name, card.architecture, card.weights, detector.score_threshold,
        )
        return detector

    def warm_up(self) -> None:
        """One forward pass so the first caller does not pay for lazy initialisation."""
        self.raw(torch.full((3, 480, 640), 0.5))
        self.warm = True

    def raw(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with self._lock, torch.inference_mode():
            return self._module(image)

    def detect(self, image: torch.Tensor) -> list[Detection]:
        """Detections at or above the threshold, highest score first, placeholders dropped."""
        boxes, labels, scores = self.raw(image)
        names = self.card.categories
        found = []
        for box, label, score in zip(boxes.tolist(), labels.tolist(), scores.tolist()):
            if score < self.score_threshold or not 0 <= label < len(names) or names[label] in PLACEHOLDERS:
                continue
            found.append(Detection(names[label], float(score), tuple(box)))
        found.sort(key=lambda d: d.score, reverse=True)
        return found
