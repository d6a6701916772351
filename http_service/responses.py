"""The HTTP API's answers, built through their one definition (:mod:`http_service.response_models`)."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from http_service import response_models as answers
from serving import Detector, ModelStatus, Prediction, known_classes


def json_answer(answer: answers.Answer, status: int = 200) -> tuple[Response, int]:
    return jsonify(answer.body()), status


def error_body(code: str, message: str, choices: list[str] | None = None) -> dict[str, Any]:
    detail = answers.ErrorDetail(code=code, message=message, **({"choices": choices} if choices is not None else {}))
    return answers.ErrorResponse(error=detail).body()


def error_response(status: int, code: str, message: str, choices: list[str] | None = None) -> tuple[Response, int]:
    return jsonify(error_body(code, message, choices)), status


def model_info(detector: Detector) -> answers.ModelInfo:
    card = detector.card
    return answers.ModelInfo(
        name=detector.name, version=detector.version, weights=card.weights, license=card.license,
        precision=detector.precision, random_init=card.random_init, masks_available=card.masks,
        default_threshold=detector.score_threshold,
    )


def model_details(detector: Detector) -> answers.ModelDetails:
    """``GET /v1/model``: the card, with what only this route tells (input size, why this precision, classes)."""
    return answers.ModelDetails(
        **model_info(detector).body(), input_size=detector.card.input_size,
        precision_reason=detector.precision_reason, classes=known_classes(detector.card),
    )


def detect_response(prediction: Prediction, threshold: float | None) -> answers.DetectResponse:
    detector = prediction.detector
    detections = []
    for detection in prediction.detections:
        mask = prediction.image_mask_rle(detection)
        detections.append(answers.Detection(
            label=detection.label, score=round(detection.score, 4), box=prediction.image_box(detection),
            **({"mask": answers.Mask(**mask)} if mask is not None else {}),
        ))
    width, height = prediction.original_size
    return answers.DetectResponse(
        model=model_info(detector),
        image=answers.ImageSize(width=width, height=height),
        threshold=detector.score_threshold if threshold is None else threshold,
        detections=detections,
        timing_ms={stage: round(seconds * 1000, 1) for stage, seconds in prediction.timings.items()},
    )


def model_list(statuses: list[ModelStatus]) -> answers.ModelList:
    """``GET /v1/models``: every model of the repository, its versions and what serves."""
    models = []
    for status in statuses:
        entry: dict[str, Any] = {
            "name": status.name,
            "default": status.default,
            "serving_version": status.serving_version,
            "versions": [answers.VersionEntry(version=v.version, state=v.state, **({"reason": v.reason} if v.reason else {}))
                         for v in status.versions],
        }
        if status.removed:
            entry["removed"] = True
        if status.upcoming:
            entry["upcoming"] = status.upcoming
        if status.detector is not None:
            card = status.detector.card
            entry.update({
                "license": card.license,
                "precision": status.detector.precision,
                "masks_available": card.masks,
                "classes": len(known_classes(card)),
                "default_threshold": status.detector.score_threshold,
            })
        models.append(answers.ModelListing(**entry))
    return answers.ModelList(models=models)
