"""JSON shapes of the HTTP API: the error envelope and the structured detection result."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from model.detector import Detector
from model.pipeline import Prediction


def error_body(code: str, message: str, choices: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if choices is not None:
        body["choices"] = choices
    return {"error": body}


def error_response(status: int, code: str, message: str, choices: list[str] | None = None) -> tuple[Response, int]:
    return jsonify(error_body(code, message, choices)), status


def model_json(detector: Detector) -> dict[str, Any]:
    card = detector.card
    return {
        "name": card.name,
        "weights": card.weights,
        "license": card.license,
        "precision": detector.precision,
        "random_init": card.random_init,
        "masks_available": card.masks,
        "default_threshold": detector.score_threshold,
    }


def prediction_json(prediction: Prediction, detector: Detector, threshold: float | None) -> dict[str, Any]:
    detections = []
    for detection in prediction.detections:
        item: dict[str, Any] = {
            "label": detection.label,
            "score": round(detection.score, 4),
            "box": prediction.image_box(detection),
        }
        mask = prediction.image_mask_rle(detection)
        if mask is not None:
            item["mask"] = mask
        detections.append(item)
    width, height = prediction.original_size
    return {
        "model": model_json(detector),
        "image": {"width": width, "height": height},
        "threshold": detector.score_threshold if threshold is None else threshold,
        "detections": detections,
        "timing_ms": {stage: round(seconds * 1000, 1) for stage, seconds in prediction.timings.items()},
    }
