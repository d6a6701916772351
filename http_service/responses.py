"""JSON shapes of the HTTP API: the error envelope and the structured detection result."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from serving import Detector, ModelStatus, Prediction, known_classes


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
        "name": detector.name,
        "version": detector.version,
        "weights": card.weights,
        "license": card.license,
        "precision": detector.precision,
        "random_init": card.random_init,
        "masks_available": card.masks,
        "default_threshold": detector.score_threshold,
    }


def prediction_json(prediction: Prediction, threshold: float | None) -> dict[str, Any]:
    detector = prediction.detector
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


def models_json(statuses: list[ModelStatus]) -> dict[str, Any]:
    """``GET /v1/models``: every model of the repository, its versions and what serves."""
    models = []
    for status in statuses:
        entry: dict[str, Any] = {
            "name": status.name,
            "default": status.default,
            "serving_version": status.serving_version,
            "versions": [{"version": v.version, "state": v.state, **({"reason": v.reason} if v.reason else {})}
                         for v in status.versions],
        }
        if status.removed:
            entry["removed"] = True
        if status.detector is not None:
            card = status.detector.card
            entry.update({
                "license": card.license,
                "precision": status.detector.precision,
                "masks_available": card.masks,
                "classes": len(known_classes(card)),
                "default_threshold": status.detector.score_threshold,
            })
        models.append(entry)
    return {"models": models}
