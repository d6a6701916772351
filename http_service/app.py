"""Flask adapter: JSON over HTTP in front of the shared inference core.

The success body of ``POST /predict`` is exactly ``{"objects": [...]}``; every
failure is ``{"error": {"code", "message"}}`` with the status its error type
carries. Flask's own errors (404, 405, 413, ...) get the same JSON shape.
The ``/v1`` API lives in :mod:`http_service.detect_api`, the browser page in
``static/``, the OpenAPI document in :mod:`http_service.openapi`.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from http_service.detect_api import detect_blueprint
from http_service.openapi import openapi_document
from http_service.params import JSON_BODY_BYTES, read_json, url_field
from http_service.responses import detector_error_response, error_response
from model.config import Settings
from model.errors import DetectorError, InvalidRequest
from model.metrics import HTTP_INFERENCE_COUNT, render
from model.pipeline import Pipeline
from model.serving import configure_logging, record_error, serve_predict, start_pipeline

log = logging.getLogger(__name__)

def _read_url() -> str:
    """The ``url`` field of a JSON object body, or InvalidRequest saying what is wrong."""
    body = read_json(request)
    if body is None:
        raise InvalidRequest('body must be JSON: {"url": "<image url>"}')
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object")
    return url_field(body)


def create_app(pipeline: Pipeline) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = JSON_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]

    @app.post("/predict")
    def predict() -> Any:
        HTTP_INFERENCE_COUNT.inc()
        url = ""
        try:
            url = _read_url()
            prediction = serve_predict(pipeline, "http", url)
        except InvalidRequest as exc:
            record_error("http", exc.code, url, exc.message)
            return detector_error_response(exc)
        except DetectorError as exc:
            return detector_error_response(exc)
        return jsonify({"objects": prediction.labels})

    app.register_blueprint(detect_blueprint(pipeline))
    document = openapi_document(pipeline.settings)

    @app.get("/")
    def page() -> Response:
        return app.send_static_file("index.html")

    @app.get("/openapi.json")
    def openapi() -> Any:
        return jsonify(document)

    @app.get("/metrics")
    def metrics() -> Response:
        payload, content_type = render()
        return Response(payload, content_type=content_type)

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Any:
        if pipeline.ready:
            return jsonify({"status": "ready"})
        return error_response(503, "model_not_ready", pipeline.not_ready_reason)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        code = (exc.name or "error").lower().replace(" ", "_")
        if exc.code == 413:
            limit = request.max_content_length or JSON_BODY_BYTES
            record_error("http", "request_too_large", "", "request body too large")
            return error_response(413, "request_too_large", f"this request's body is limited to {limit} bytes")
        return error_response(exc.code or 500, code, exc.description or code)

    @app.errorhandler(Exception)
    def crash(exc: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal server error")

    return app


def create_default_app() -> Flask:
    """The gunicorn entry point (``http_service.app:create_default_app()``)."""
    configure_logging()
    return create_app(start_pipeline(Settings.from_env()))
