"""The ``/v1`` HTTP API: boxes, scores, masks, options, uploads, batches and annotated PNGs.

Separate from ``POST /predict`` on purpose: that contract stays byte-for-byte
what it was (and only it moves ``app_http_inference_count``). Every route
here goes through the same inference core and error types.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Blueprint, Response, jsonify, request

from http_service.caller import caller_alive
from model.request.annotate import annotated_png
from model.errors import CallerGone, DetectorError
from model.request.options import DetectOptions, known_classes
from model.request.pipeline import Pipeline, Prediction
from model.request.serving import record_error, serve_predict, serve_upload
from http_service.limits import BATCH_BODY_BYTES
from http_service.params import ImageSource, image_request, json_body, options_from_fields
from http_service.request_fields import DetectBody, batch_body
from http_service.responses import error_body, model_json, models_json, prediction_json

BATCH_FETCH_THREADS = 4


def detect_blueprint(pipeline: Pipeline) -> Blueprint:
    api = Blueprint("detect_v1", __name__)
    max_image_bytes = pipeline.settings.fetch.max_bytes
    batch_model = batch_body(pipeline.settings.max_batch)

    def run(source: ImageSource, options: DetectOptions) -> Prediction:
        if source.url is not None:
            return serve_predict(pipeline, "http", source.url, options=options, alive=caller_alive())
        assert source.data is not None
        return serve_upload(pipeline, "http", source.data, options, alive=caller_alive())

    def as_json(prediction: Prediction, options: DetectOptions) -> dict[str, Any]:
        return prediction_json(prediction, options.threshold)

    @api.get("/v1/model")
    def model() -> Any:
        detector = pipeline.ready_detector()
        return jsonify({**model_json(detector), "input_size": detector.card.input_size,
                        "precision_reason": detector.precision_reason, "classes": known_classes(detector.card)})

    @api.get("/v1/models")
    def models() -> Any:
        return jsonify(models_json(pipeline))

    @api.post("/v1/detect")
    def detect() -> Any:
        source, options = image_request(request, max_image_bytes)
        return jsonify(as_json(run(source, options), options))

    @api.post("/v1/detect:batch")
    def detect_batch() -> Any:
        request.max_content_length = BATCH_BODY_BYTES
        body = json_body(request, batch_model)
        urls, options = body.urls, body.detect_options()
        options.checked(pipeline.ready_detector(options.model).card)
        alive = caller_alive()

        def one(url: str) -> dict[str, Any]:
            """One item; the batch holds one admission slot for all, and stops when its caller goes."""
            try:
                if not alive():
                    raise CallerGone("the caller went away before this item was fetched")
                prediction = serve_predict(pipeline, "http", url, options=options, alive=alive, admit=False)
                return {"url": url, **as_json(prediction, options)}
            except DetectorError as exc:
                record_error("http", exc)
                return {"url": url, **error_body(exc.code, exc.message, exc.choices)}

        with pipeline.admission.slot(), ThreadPoolExecutor(max_workers=min(BATCH_FETCH_THREADS, len(urls))) as pool:
            results = list(pool.map(one, urls))
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
