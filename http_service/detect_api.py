"""The ``/v1`` HTTP API: boxes, scores, masks, options, uploads, batches and annotated PNGs.

Separate from ``POST /predict`` on purpose: that contract stays byte-for-byte
what it was (and only it moves ``app_http_inference_count``). Every route
here goes through the same inference core and error types.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from http_service.caller import caller_alive, caller_deadline
from common.errors import DetectorError
from common.limits import BATCH_BODY_BYTES
from http_service.params import ImageSource, image_request, json_body, options_from_fields
from http_service.request_fields import DetectBody, batch_body
from http_service.responses import detect_response, error_body, json_answer, model_details, model_list
from serving import DetectionService, DetectOptions, Prediction, record_error
from serving.annotate import annotated_png


def detect_blueprint(service: DetectionService) -> Blueprint:
    api = Blueprint("detect_v1", __name__)
    max_image_bytes = service.settings.fetch.max_bytes
    batch_model = batch_body(service.settings.max_batch)

    def run(source: ImageSource, options: DetectOptions) -> Prediction:
        if source.url is not None:
            return service.predict_url("http", source.url, options, alive=caller_alive(),
                                       deadline=caller_deadline())
        assert source.data is not None
        return service.predict_bytes("http", source.data, options, alive=caller_alive(),
                                     deadline=caller_deadline())

    @api.get("/v1/model")
    def model() -> Any:
        return json_answer(model_details(service.model()))

    @api.get("/v1/models")
    def models() -> Any:
        return json_answer(model_list(service.models()))

    @api.post("/v1/detect")
    def detect() -> Any:
        source, options = image_request(request, max_image_bytes)
        return json_answer(detect_response(run(source, options), options.threshold))

    @api.post("/v1/detect:batch")
    def detect_batch() -> Any:
        """Each item is its DetectResponse or Error with its url first (response_models.BatchResponse)."""
        request.max_content_length = BATCH_BODY_BYTES
        body = json_body(request, batch_model)
        urls, options = body.urls, body.detect_options()
        results = []
        for url, outcome in zip(urls, service.batch("http", list(urls), options, caller_alive(),
                                                                  deadline=caller_deadline())):
            if isinstance(outcome, DetectorError):
                record_error("http", outcome)
                results.append({"url": url, **error_body(outcome.code, outcome.message, outcome.choices)})
            else:
                results.append({"url": url, **detect_response(outcome, options.threshold).body()})
        return jsonify({"results": results})

    def png(prediction: Prediction) -> Response:
        return Response(annotated_png(prediction), content_type="image/png", headers={"Cache-Control": "no-store"})

    @api.get("/v1/detect/annotated")
    def annotated_get() -> Any:
        query = options_from_fields(request.args, DetectBody)
        return png(run(ImageSource(url=query.url), query.detect_options()))

    @api.post("/v1/detect/annotated")
    def annotated_post() -> Any:
        return png(run(*image_request(request, max_image_bytes)))

    return api
