"""The OpenAPI 3.0 description of the HTTP API, served at ``/openapi.json``.

The request schemas and parameters come from the models that validate requests
(:mod:`http_service.request_fields`), so the document allows exactly what the service
accepts; the response schemas from the models every answer is built with
(:mod:`http_service.response_models`); the limits it states (batch size, image bytes) are the
running service's settings. ``tests/service/test_openapi.py`` runs schemathesis against it and
the live service, every check included.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from http_service.request_fields import DeepStackFields, DetectBody, Options, PredictBody, batch_body
from http_service.response_models import SCHEMAS
from common.settings import Settings
from serving import MAX_DETECTIONS

_REF_TEMPLATE = "#/components/schemas/{model}"

_ERRORS = {
    "400": "Invalid request or option (see error.code; unknown classes list error.choices)",
    "403": "The URL points at an address the service may not fetch",
    "413": "Request body or image too large",
    "415": "Not an image, or an unsupported request content type",
    "422": "The image could not be decoded, or its URL answered 4xx (error.code upstream_rejected)",
    "500": "Internal error",
    "502": "The image URL could not be fetched",
    "401": "A wrong or missing api_key where one is configured",
    "404": "No served model of that name (error.code model_not_found; error.choices lists them)",
    "503": "The model is not loaded yet, or the process is full (error.code overloaded; see Retry-After)",
    "504": "Fetching the image timed out, or less time was left of X-Request-Timeout-Ms than the model takes "
           "(error.code deadline_exceeded)",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: _json(_ref("ErrorResponse"), _ERRORS[code]) for code in codes}


_IMAGE_ERRORS = ("400", "403", "404", "413", "415", "422", "500", "502", "503", "504")
_PREDICT_ERRORS = tuple(code for code in _IMAGE_ERRORS if code != "404")  # always the default model
# Every prediction route takes the caller's deadline (serving.deadline).
_DEADLINE = {"name": "X-Request-Timeout-Ms", "in": "header", "required": False,
             "description": "The caller's deadline in milliseconds from arrival: work that cannot end in time is "
                            "skipped with 504 deadline_exceeded",
             "schema": {"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": 86_400_000}}


def _openapi30(node: Any) -> Any:
    """pydantic writes JSON Schema 2020-12; OpenAPI 3.0 marks an optional value ``nullable``
    instead of adding a null type, takes no sibling keys beside a ``$ref``, and needs no titles."""
    if isinstance(node, list):
        return [_openapi30(item) for item in node]
    if not isinstance(node, dict):
        return node
    variants = node.get("anyOf")
    if isinstance(variants, list) and {"type": "null"} in variants and len(variants) == 2:
        (other,) = [_openapi30(v) for v in variants if v != {"type": "null"}]
        rest = {k: _openapi30(v) for k, v in node.items() if k not in ("anyOf", "title")}
        if "$ref" in other:
            return {**rest, "allOf": [other], "nullable": True}
        return {**other, **rest, "nullable": True}
    if "const" in node:  # a Literal: OpenAPI 3.0 has no const
        node = {**{k: v for k, v in node.items() if k != "const"}, "enum": [node["const"]]}
    return {k: (_openapi30(v) if k != "properties" else {n: _openapi30(p) for n, p in v.items()})
            for k, v in node.items() if k != "title"}


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=_REF_TEMPLATE)
    schema.pop("$defs", None)
    return _openapi30(schema)


def _field_schemas(model: type[BaseModel]) -> dict[str, Any]:
    """Each field's schema as a query or form field: text, so never null."""
    fields = {}
    for name, schema in _schema(model)["properties"].items():
        schema = {k: v for k, v in schema.items() if k not in ("nullable", "default")} | (
            {"default": schema["default"]} if schema.get("default") is not None else {})
        fields[name] = schema
    return fields


def _query(model: type[BaseModel], required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """``model``'s fields as query parameters; ``classes`` repeats (or takes commas)."""
    return [
        {"name": name, "in": "query", "required": name in required, "schema": schema,
         **({"style": "form", "explode": True} if schema.get("type") == "array" else {})}
        for name, schema in _field_schemas(model).items()
    ]


def _image_body(max_bytes: int) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/json": {"schema": _ref("DetectBody")},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary", "minLength": 1,
                                  "description": f"At most {max_bytes} bytes"},
                        **_field_schemas(Options),
                    },
                },
                "encoding": {"classes": {"style": "form", "explode": True}},
            },
            "image/*": {"schema": {"type": "string", "format": "binary", "minLength": 1}},
        },
    }


def _response_schemas() -> dict[str, Any]:
    """Every answer's schema, and those of the models inside them, under their class names."""
    _, document = models_json_schema([(model, "serialization") for model in SCHEMAS], ref_template=_REF_TEMPLATE)
    return {name: _openapi30(schema) for name, schema in document["$defs"].items()}


def _deepstack_errors(*codes: str) -> dict[str, Any]:
    return {code: _json(_ref("DeepStackError"), _ERRORS[code]) for code in codes}


def _schemas(max_batch: int) -> dict[str, Any]:
    shared = {name: _openapi30(schema) for name, schema in
              DetectBody.model_json_schema(ref_template=_REF_TEMPLATE).get("$defs", {}).items()}
    return {
        **shared,
        "PredictBody": _schema(PredictBody),
        "DetectBody": _schema(DetectBody),
        "BatchBody": _schema(batch_body(max_batch)),
        **_response_schemas(),
    }


def openapi_document(settings: Settings) -> dict[str, Any]:
    max_bytes = settings.fetch.max_bytes
    deepstack_notes = (
        "Integer pixel boxes; failures are {success: false, error}. Needs api_key when "
        "DETECTOR_DEEPSTACK_API_KEY is set. At most DETECTOR_DEEPSTACK_MAX_PREDICTIONS "
        f"({settings.deepstack_max_predictions or MAX_DETECTIONS}) predictions, the highest scores."
    )
    deepstack_body = {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object",
        "required": ["image"],
        "properties": {
            "image": {"type": "string", "format": "binary", "minLength": 1,
                                  "description": f"At most {max_bytes} bytes"},
            **_field_schemas(DeepStackFields),
        },
    }}}}
    png = {"description": "The image with boxes, labels and scores drawn (masks tinted when asked)",
           "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Instance detection service",
            "version": "1.0.0",
            "description": "COCO instance detection. POST /predict is the stable label-only contract; "
                           "/v1 adds boxes, scores, masks, options, uploads, batches and annotated images.",
        },
        "paths": {
            "/predict": {"post": {
                "summary": "COCO class name of every detected instance",
                "parameters": [_DEADLINE],
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": _ref("PredictBody")}}},
                "responses": {"200": _json(_ref("PredictResponse"), "One entry per instance"),
                              **_errors(*_PREDICT_ERRORS)},
            }},
            "/v1/model": {"get": {
                "summary": "The served model, its default threshold and the class names it knows",
                "responses": {"200": _json(_ref("ModelDetails"), "The served model"), **_errors("503")},
            }},
            "/v1/detect": {"post": {
                "summary": "Labels, scores, boxes and optional masks for one image (URL or upload)",
                "description": "Options go in the JSON body with a URL, or in the query string (or form "
                               "fields) with an upload; query options beside a JSON body are a 400.",
                "parameters": [*_query(Options), _DEADLINE],
                "requestBody": _image_body(max_bytes),
                "responses": {"200": _json(_ref("DetectResponse"), "Detections, best first"),
                              **_errors(*_IMAGE_ERRORS)},
            }},
            "/v1/detect:batch": {"post": {
                "summary": f"Detections for up to {settings.max_batch} image URLs, answered in order",
                "parameters": [_DEADLINE],
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": _ref("BatchBody")}}},
                "responses": {"200": _json(_ref("BatchResponse"), "One result or error per URL"),
                              **_errors("400", "404", "413", "500", "503", "504")},
            }},
            "/v1/detect/annotated": {
                "get": {
                    "summary": "The image at a URL with its detections drawn",
                    "parameters": [*_query(DetectBody, required=("url",)), _DEADLINE],
                    "responses": {"200": png, **_errors(*_IMAGE_ERRORS)},
                },
                "post": {
                    "summary": "An uploaded image (or a URL in JSON) with its detections drawn",
                    "parameters": [*_query(Options), _DEADLINE],
                    "requestBody": _image_body(max_bytes),
                    "responses": {"200": png, **_errors(*_IMAGE_ERRORS)},
                },
            },
            "/v1/models": {"get": {
                "summary": "Every model of the repository: versions, their states, what serves, which is default",
                "responses": {"200": _json(_ref("ModelList"), "The models")},
            }},
            "/v1/vision/detection": {"post": {
                "summary": "DeepStack / CodeProject.AI object detection (Home Assistant, Blue Iris, Agent DVR, Frigate)",
                "description": "The default model. " + deepstack_notes,
                "parameters": [_DEADLINE],
                "requestBody": deepstack_body,
                "responses": {"200": _json(_ref("DeepStackResponse"), "Detections, best first"),
                              **_deepstack_errors("400", "401", "413", "415", "422", "500", "503", "504")},
            }},
            "/v1/vision/custom/list": {"post": {
                "summary": "DeepStack / CodeProject.AI: the names of the custom models (the repository's models)",
                "description": "Clients post it with an empty body, or a form holding api_key where "
                               "DETECTOR_DEEPSTACK_API_KEY is set.",
                "responses": {"200": _json(_ref("DeepStackModelList"), "The model names"),
                              **_deepstack_errors("401")},
            }},
            "/v1/vision/custom/{name}": {"post": {
                "summary": "DeepStack / CodeProject.AI custom-model detection: the repository's model <name>",
                "description": deepstack_notes,
                "parameters": [{"name": "name", "in": "path", "required": True,
                                "schema": _field_schemas(Options)["model"]}, _DEADLINE],
                "requestBody": deepstack_body,
                "responses": {"200": _json(_ref("DeepStackResponse"), "Detections, best first"),
                              **_deepstack_errors("400", "401", "404", "413", "415", "422", "500", "503", "504")},
            }},
            "/healthz": {"get": {"summary": "The process is up",
                                 "responses": {"200": _json(_ref("Status"), "Alive")}}},
            "/readyz": {"get": {"summary": "The model is loaded and warm",
                                "responses": {"200": _json(_ref("Status"), "Ready"), **_errors("503")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics of every worker and the gRPC server",
                                 "responses": {"200": {"description": "Prometheus text format",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        },
        "components": {"schemas": _schemas(settings.max_batch)},
    }
