"""The DeepStack / CodeProject.AI object-detection API: ``POST /v1/vision/detection`` and custom models.

Home Assistant, Blue Iris, Agent DVR and Frigate talk to local detection
servers this way: a multipart ``image`` file, optional ``min_confidence`` and
``api_key`` form fields, answered with ``{"success": true, "predictions":
[{"label", "confidence", "x_min", "y_min", "x_max", "y_max"}]}`` in integer
pixels, or ``{"success": false, "error": "..."}``. ``/v1/vision/detection`` runs
the default model; ``/v1/vision/custom/<name>`` the repository's model ``<name>``
(model.repository), and ``/v1/vision/custom/list`` names them. At most
``deepstack_max_predictions`` predictions are answered, the highest scores:
Frigate's plugin fails on more than 20. A thin adapter over the same core as
every other route: same limits, admission and metrics (with ``transport="deepstack"``).
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, request

from http_service.caller import caller_alive, caller_deadline
from http_service.errors import register_route_errors
from common.limits import upload_body_bytes
from http_service.params import multipart_image
from http_service.request_fields import DeepStackFields, validated
from http_service.response_models import DeepStackError, DeepStackModelList, DeepStackPrediction, DeepStackResponse, ImageSize
from http_service.responses import json_answer
from common.errors import Unauthorized
from serving import MAX_DETECTIONS, DetectionService, DetectOptions

TRANSPORT = "deepstack"


def _min_confidence() -> float:
    """The form's ``min_confidence``; an empty field means the default, as DeepStack has it."""
    fields = {name: value for name, value in request.form.items() if value.strip()}
    return validated(DeepStackFields, fields, parameters=True).min_confidence


def deepstack_blueprint(service: DetectionService) -> Blueprint:
    api = Blueprint("deepstack", __name__)
    api_key = service.settings.deepstack_api_key
    max_predictions = service.settings.deepstack_max_predictions or MAX_DETECTIONS
    max_image_bytes = service.settings.fetch.max_bytes

    register_route_errors(api, TRANSPORT,
                          lambda error: DeepStackError(success=False, error=error.message, code=error.code).body())

    def authorised() -> None:
        # The form holds the upload: its limit applies before the api_key field can be read.
        request.max_content_length = upload_body_bytes(max_image_bytes)
        if api_key and not hmac.compare_digest(request.form.get("api_key", "").encode(), api_key.encode()):
            raise Unauthorized("Incorrect api key")

    @api.post("/v1/vision/detection")
    def detection() -> Any:
        return detect(None)

    @api.post("/v1/vision/custom/list")
    def custom_list() -> Any:
        authorised()
        return json_answer(DeepStackModelList(success=True, models=service.model_names()))

    @api.post("/v1/vision/custom/<name>")
    def custom(name: str) -> Any:
        return detect(name)

    def detect(model: str | None) -> Any:
        authorised()
        data = multipart_image(request, max_image_bytes)
        options = DetectOptions(model=model, threshold=_min_confidence(), max_detections=max_predictions)
        prediction = service.predict_bytes(TRANSPORT, data, options, alive=caller_alive(),
                                             deadline=caller_deadline(service.settings.deepstack_deadline_ms))
        width, height = prediction.original_size
        predictions = []
        for detection in prediction.detections:
            x1, y1, x2, y2 = prediction.image_box(detection)
            predictions.append(DeepStackPrediction(
                label=detection.label, confidence=round(detection.score, 4),
                x_min=int(round(x1)), y_min=int(round(y1)), x_max=int(round(x2)), y_max=int(round(y2)),
            ))
        timings = {stage: round(seconds * 1000) for stage, seconds in prediction.timings.items()}
        return json_answer(DeepStackResponse(
            success=True, predictions=predictions, count=len(predictions), inferenceMs=timings.get("inference", 0),
            processMs=sum(timings.values()), image=ImageSize(width=width, height=height),
        ))

    return api
