"""Turn an HTTP request into an image source plus :class:`DetectOptions`.

The same options arrive three ways: JSON fields (typed), and query-string or
multipart form fields (text). Each is parsed strictly here (a boolean is not a
number, "yes" is not a boolean, an unknown field is a typo worth reporting);
what the served model accepts is decided by ``DetectOptions.checked``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

from flask import Request
from werkzeug.datastructures import MultiDict

from model.errors import ImageTooLarge, InvalidRequest, UnsupportedMediaType
from http_service.limits import upload_body_bytes
from model.options import MAX_DETECTIONS, DetectOptions

OPTION_FIELDS = ("model", "threshold", "classes", "max_detections", "masks")
UPLOAD_FIELD = "image"
_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


@dataclass(frozen=True)
class ImageSource:
    """Exactly one of a URL to fetch or uploaded bytes."""

    url: str | None = None
    data: bytes | None = None


def _json_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f'"{name}" must be a number')
    return float(value)


def _json_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if not (isinstance(value, float) and value.is_integer()):
            raise InvalidRequest(f'"{name}" must be an integer from 1 to {MAX_DETECTIONS}')
        value = int(value)
    return value


def _model_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest('"model" must be the name of a served model (see /v1/models)', field="model")
    return value


def options_from_json(body: Mapping[str, Any]) -> DetectOptions:
    options = DetectOptions()
    if body.get("model") is not None:
        options = replace(options, model=_model_name(body["model"]))
    if body.get("threshold") is not None:
        options = replace(options, threshold=_json_number("threshold", body["threshold"]))
    if body.get("classes") is not None:
        classes = body["classes"]
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise InvalidRequest('"classes" must be a list of class names, e.g. ["person", "dog"]')
        options = replace(options, classes=tuple(classes))
    if body.get("max_detections") is not None:
        options = replace(options, max_detections=_json_int("max_detections", body["max_detections"]))
    if body.get("masks") is not None:
        if not isinstance(body["masks"], bool):
            raise InvalidRequest('"masks" must be true or false')
        options = replace(options, masks=body["masks"])
    return options


def options_from_fields(fields: MultiDict[str, str], extra: tuple[str, ...] = ()) -> DetectOptions:
    """Options from a query string or form: ``classes`` may repeat or be comma-separated."""
    options = DetectOptions()
    accepted = (*extra, *OPTION_FIELDS)
    unknown = sorted(set(fields) - set(accepted))
    if unknown:
        raise InvalidRequest(f"unknown parameter(s) {', '.join(unknown)}; accepted: {', '.join(accepted)}")
    if "model" in fields:
        options = replace(options, model=_model_name(fields["model"].strip()))
    if "threshold" in fields:
        try:
            threshold = float(fields["threshold"])
        except ValueError:
            raise InvalidRequest('"threshold" must be a number') from None
        if not math.isfinite(threshold):
            raise InvalidRequest('"threshold" must be a number from 0 to 1')
        options = replace(options, threshold=threshold)
    if "classes" in fields:
        names = [name.strip() for value in fields.getlist("classes") for name in value.split(",") if name.strip()]
        options = replace(options, classes=tuple(names))
    if "max_detections" in fields:
        try:
            options = replace(options, max_detections=int(fields["max_detections"]))
        except ValueError:
            raise InvalidRequest(f'"max_detections" must be an integer from 1 to {MAX_DETECTIONS}') from None
    if "masks" in fields:
        flag = fields["masks"].strip().lower()
        if flag not in _TRUE | _FALSE:
            raise InvalidRequest('"masks" must be true or false')
        options = replace(options, masks=flag in _TRUE)
    return options


def read_json(request: Request) -> Any:
    """The parsed JSON body; None if it is not JSON. Nesting deep enough to exhaust the parser's
    recursion (1000 brackets fit in the 16 KiB limit) is the caller's fault, not a 500."""
    try:
        return request.get_json(force=True, silent=True)
    except RecursionError:
        raise InvalidRequest("body is JSON nested too deeply") from None


def json_object(request: Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The body as a JSON object with only ``allowed`` keys, or InvalidRequest."""
    body = read_json(request)
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise InvalidRequest(f"unknown field(s) {', '.join(unknown)}; accepted: {', '.join(allowed)}")
    return body


def url_field(body: Mapping[str, Any]) -> str:
    url = body.get("url")
    if not isinstance(url, str):
        raise InvalidRequest('field "url" is required and must be a string')
    return url


def image_request(request: Request, max_image_bytes: int) -> tuple[ImageSource, DetectOptions]:
    """A URL in a JSON body, a multipart ``image`` file, or a raw ``image/*`` body, with its options."""
    mimetype = request.mimetype
    if mimetype == "application/json":
        if request.args:
            raise InvalidRequest("with a JSON body, put the options in the body, not in the query string")
        body = json_object(request, ("url", *OPTION_FIELDS))
        return ImageSource(url=url_field(body)), options_from_json(body)
    if mimetype == "multipart/form-data":
        data = multipart_image(request, max_image_bytes)
        fields = MultiDict(request.form)
        fields.update(request.args)
        return ImageSource(data=data), options_from_fields(fields)
    if mimetype.startswith("image/"):
        request.max_content_length = max_image_bytes
        return ImageSource(data=_checked_size(request.get_data(), max_image_bytes)), options_from_fields(request.args)
    raise UnsupportedMediaType(
        "send application/json with a \"url\", multipart/form-data with an \"image\" file, or an image/* body"
    )


def multipart_image(request: Request, max_image_bytes: int) -> bytes:
    """The bytes of the multipart file field ``image``, within the upload limit and not empty."""
    request.max_content_length = upload_body_bytes(max_image_bytes)
    upload = request.files.get(UPLOAD_FIELD)
    if upload is None:
        raise InvalidRequest(f'multipart body needs a file field named "{UPLOAD_FIELD}"', field=UPLOAD_FIELD)
    return _checked_size(upload.read(max_image_bytes + 1), max_image_bytes)


def _checked_size(data: bytes, limit: int) -> bytes:
    if len(data) > limit:
        raise ImageTooLarge(f"images are limited to {limit} bytes")
    if not data:
        raise InvalidRequest("the uploaded image is empty")
    return data
