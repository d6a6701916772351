"""Turn an HTTP request into an image source plus :class:`DetectOptions`.

The same options arrive three ways: JSON fields (typed), and query-string or
multipart form fields (text). Each is validated by the one definition of the
API's fields (:mod:`http_service.request_fields`), which also writes
``/openapi.json``; what the chosen model accepts is decided by ``DetectOptions.checked``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Request
from werkzeug.datastructures import MultiDict

from common.limits import upload_body_bytes
from http_service.request_fields import DetectBody, Options, PredictBody, text_fields, validated
from common.errors import ImageTooLarge, InvalidRequest, UnsupportedMediaType
from serving import DetectOptions

UPLOAD_FIELD = "image"


@dataclass(frozen=True)
class ImageSource:
    """Exactly one of a URL to fetch or uploaded bytes."""

    url: str | None = None
    data: bytes | None = None


def options_from_fields(fields: MultiDict[str, str], fields_model: type[Options] = Options) -> Options:
    """Options (plus whatever else ``fields_model`` has) from a query string or form."""
    return validated(fields_model, text_fields(fields, tuple(fields_model.model_fields)), parameters=True)


def read_json(request: Request) -> Any:
    """The parsed JSON body; None if it is not JSON. Nesting deep enough to exhaust the parser's
    recursion (1000 brackets fit in the 16 KiB limit) is the caller's fault, not a 500."""
    try:
        return request.get_json(force=True, silent=True)
    except RecursionError:
        raise InvalidRequest("body is JSON nested too deeply") from None


def json_body(request: Request, body_model: type[Options]) -> Any:
    """The body as a JSON object valid for ``body_model``, or InvalidRequest."""
    body = read_json(request)
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object")
    return validated(body_model, body)


def predict_url(request: Request) -> str:
    """``POST /predict``'s ``url``, or InvalidRequest saying what is wrong."""
    body = read_json(request)
    if body is None:
        raise InvalidRequest('body must be JSON: {"url": "<image url>"}')
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object")
    return validated(PredictBody, body).url


def image_request(request: Request, max_image_bytes: int) -> tuple[ImageSource, DetectOptions]:
    """A URL in a JSON body, a multipart ``image`` file, or a raw ``image/*`` body, with its options."""
    mimetype = request.mimetype
    if mimetype == "application/json":
        if request.args:
            raise InvalidRequest("with a JSON body, put the options in the body, not in the query string")
        body = json_body(request, DetectBody)
        return ImageSource(url=body.url), body.detect_options()
    if mimetype == "multipart/form-data":
        data = multipart_image(request, max_image_bytes)
        fields = MultiDict(request.form)
        fields.update(request.args)
        return ImageSource(data=data), options_from_fields(fields).detect_options()
    if mimetype.startswith("image/"):
        request.max_content_length = max_image_bytes
        data = _checked_size(request.get_data(), max_image_bytes)
        return ImageSource(data=data), options_from_fields(request.args).detect_options()
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
