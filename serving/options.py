"""Per-request detection options, validated once for every transport.

HTTP (JSON, query string, form fields) and gRPC each turn their wire format
into a :class:`DetectOptions`; :meth:`DetectOptions.checked` then decides what
is acceptable for the model being served, so both transports refuse the same
requests with the same messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from model.card import ModelCard
from model.coco import PLACEHOLDERS
from common.errors import InvalidRequest

MAX_DETECTIONS = 100


def known_classes(card: ModelCard) -> list[str]:
    """The class names a caller may ask for: the model's categories minus unused placeholders."""
    return [name for name in card.categories if name not in PLACEHOLDERS]


@dataclass(frozen=True)
class DetectOptions:
    # The repository's model to run (model.repository); None: the default model.
    model: str | None = None
    threshold: float | None = None
    classes: tuple[str, ...] | None = None
    max_detections: int = MAX_DETECTIONS
    masks: bool = False

    def checked(self, card: ModelCard) -> "DetectOptions":
        """This object if the served model can honour it, else InvalidRequest naming the valid choices."""
        if self.threshold is not None and not (math.isfinite(self.threshold) and 0.0 <= self.threshold <= 1.0):
            raise InvalidRequest(f'"threshold" must be a number from 0 to 1, got {self.threshold}', field="threshold")
        if not 1 <= self.max_detections <= MAX_DETECTIONS:
            raise InvalidRequest(
                f'"max_detections" must be an integer from 1 to {MAX_DETECTIONS}, got {self.max_detections}',
                field="max_detections",
            )
        if self.classes is not None:
            valid = known_classes(card)
            unknown = sorted(set(self.classes) - set(valid))
            if unknown:
                raise InvalidRequest(
                    f'unknown class name(s) in "classes": {", ".join(map(repr, unknown))}; '
                    f"valid names are the model's {len(valid)} COCO categories (see \"choices\")",
                    choices=valid,
                    field="classes",
                )
            if not self.classes:
                raise InvalidRequest('"classes" must name at least one class (omit it for all classes)', field="classes")
        if self.masks and not card.masks:
            raise InvalidRequest(
                f'"masks" needs a model with a mask branch (Mask R-CNN); model {card.name} '
                "predicts boxes only",
                field="masks",
            )
        return self

    def select(self, detections: Sequence) -> list:
        """Keep the asked-for classes, best first, at most ``max_detections`` of them."""
        wanted = None if self.classes is None else set(self.classes)
        kept = [d for d in detections if wanted is None or d.label in wanted]
        return kept[: self.max_detections]
