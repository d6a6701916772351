"""Flask adapter: JSON over HTTP in front of the shared inference core.

The success body of ``POST /predict`` is exactly ``{"objects": [...]}``; every
failure is ``{"error": {"code", "message"}}`` with the status its error type
carries, written and counted by :mod:`http_service.errors` (Flask's own
errors and the front's refusals too).
The ``/v1`` API lives in :mod:`http_service.detect_api`, the browser page in
``static/``, the OpenAPI document in :mod:`http_service.openapi`.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request

from http_service.body_drain import DrainUnreadBody
from http_service.caller import caller_alive, caller_deadline
from http_service.deepstack_api import deepstack_blueprint
from http_service.detect_api import detect_blueprint
from http_service.v2_api import v2_blueprint
from http_service.errors import edge_blueprint, register_error_handlers
from http_service.openapi import openapi_document
from common.limits import JSON_BODY_BYTES, largest_body_bytes
from http_service.params import predict_url
from http_service.response_models import PredictResponse, Status
from http_service.responses import error_response, json_answer
from common.logs import configure_logging
from common.metrics import HTTP_INFERENCE_COUNT, render
from common.settings import Settings
from serving import DetectionService, lifecycle

def create_app(service: DetectionService) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = JSON_BODY_BYTES
    drain_limit = largest_body_bytes(service.settings.fetch.max_bytes)
    app.wsgi_app = DrainUnreadBody(app.wsgi_app, drain_limit)  # type: ignore[method-assign]
    app.json.sort_keys = False  # type: ignore[attr-defined]

    register_error_handlers(app)

    @app.post("/predict")
    def predict() -> Any:
        HTTP_INFERENCE_COUNT.inc()
        prediction = service.predict_url("http", predict_url(request), alive=caller_alive(),
                                         deadline=caller_deadline())
        return json_answer(PredictResponse(objects=prediction.labels))

    app.register_blueprint(detect_blueprint(service))
    app.register_blueprint(deepstack_blueprint(service))
    app.register_blueprint(v2_blueprint(service))
    app.register_blueprint(edge_blueprint())
    document = openapi_document(service.settings)

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
        return json_answer(Status(status="ok"))

    @app.get("/readyz")
    def readyz() -> Any:
        # A probe's answer, not a failed request: not counted as an error.
        if service.ready:
            return json_answer(Status(status="ready"))
        return error_response(503, "model_not_ready", service.not_ready_reason)

    return app


def create_default_app() -> Flask:
    """The gunicorn entry point (``http_service.app:create_default_app()``).

    gunicorn loads the app before a worker takes its first connection, so
    waiting here for the warm model means a new worker (at start, after a
    crash, or in a graceful reload) never answers ``model_not_ready``:
    requests wait in the socket's backlog, or are served by the old workers.
    """
    configure_logging()
    service = lifecycle.start(Settings.from_env())
    service.wait_loaded()
    return create_app(service)
