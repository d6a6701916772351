"""Typed failures shared by both transports.

Each error knows its stable machine code, the HTTP status and the gRPC status
name it maps to, so the HTTP and gRPC adapters translate it without any
per-transport decision logic.
"""

from __future__ import annotations


class DetectorError(Exception):
    """Base of every error the caller is allowed to see; the message is safe to return.

    ``choices`` lists the accepted values when the caller picked one that is
    not among them, so a client can correct itself without reading the docs;
    ``field`` names the request field at fault, where there is one. ``host``
    is the image URL's host, set by the serving core for the log line.
    ``retry_after`` (seconds) is set where retrying later is the right move. ``model`` is the
    served model the request ran on, once known, for the metrics ("-" before).
    """

    code = "internal"
    http_status = 500
    grpc_status = "INTERNAL"
    retry_after: int | None = None
    default_field: str | None = None

    def __init__(self, message: str, choices: list[str] | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.choices = choices
        self.field = field if field is not None else self.default_field
        self.host = "-"
        self.model = "-"


class InvalidRequest(DetectorError):
    code = "invalid_request"
    http_status = 400
    grpc_status = "INVALID_ARGUMENT"


class InvalidURL(DetectorError):
    code = "invalid_url"
    default_field = "url"
    http_status = 400
    grpc_status = "INVALID_ARGUMENT"


class Unauthorized(DetectorError):
    """A route protected by an API key (the DeepStack API, when configured) got none or a wrong one."""

    code = "unauthorized"
    http_status = 401
    grpc_status = "UNAUTHENTICATED"
    default_field = "api_key"


class Forbidden(DetectorError):
    """An operator's call (the model repository's load and unload) without the operator's token, or
    with no token configured; the message says how to enable them."""

    code = "forbidden"
    http_status = 403
    grpc_status = "PERMISSION_DENIED"


class Conflict(DetectorError):
    """The call is well formed but the service's state forbids it (unloading the default model)."""

    code = "conflict"
    http_status = 409
    grpc_status = "FAILED_PRECONDITION"


class AddressNotAllowed(DetectorError):
    code = "address_not_allowed"
    default_field = "url"
    http_status = 403
    grpc_status = "PERMISSION_DENIED"


class ImageTooLarge(DetectorError):
    code = "image_too_large"
    http_status = 413
    grpc_status = "RESOURCE_EXHAUSTED"


class UnsupportedMediaType(DetectorError):
    code = "unsupported_media_type"
    http_status = 415
    grpc_status = "INVALID_ARGUMENT"


class UndecodableImage(DetectorError):
    code = "undecodable_image"
    http_status = 422
    grpc_status = "INVALID_ARGUMENT"


class UpstreamError(DetectorError):
    code = "upstream_error"
    http_status = 502
    grpc_status = "UNAVAILABLE"


class UpstreamRejected(DetectorError):
    """The image server answered, and said no (4xx, or a 304 to a request that was not conditional).

    The URL is the caller's to fix, so this is neither a 5xx nor a retryable gRPC status, and it
    does not count against the service's availability.
    """

    code = "upstream_rejected"
    http_status = 422
    grpc_status = "FAILED_PRECONDITION"


class UpstreamTimeout(DetectorError):
    code = "upstream_timeout"
    http_status = 504
    grpc_status = "DEADLINE_EXCEEDED"


class DeadlineExceeded(DetectorError):
    """The caller's deadline (X-Request-Timeout-Ms, gRPC's deadline) leaves less time than the model's
    forward takes: the work is skipped, since its answer would arrive after the caller gave up."""

    code = "deadline_exceeded"
    http_status = 504
    grpc_status = "DEADLINE_EXCEEDED"


class ModelNotReady(DetectorError):
    code = "model_not_ready"
    http_status = 503
    grpc_status = "UNAVAILABLE"


class ModelNotFound(DetectorError):
    """The request named a model the repository does not serve; ``choices`` lists those it does."""

    code = "model_not_found"
    http_status = 404
    grpc_status = "NOT_FOUND"
    default_field = "model"


class Overloaded(DetectorError):
    """This process already holds as many predictions as it admits; the caller should retry soon."""

    code = "overloaded"
    http_status = 503
    grpc_status = "RESOURCE_EXHAUSTED"
    retry_after = 1


class CallerGone(DetectorError):
    """The caller cancelled, disconnected or ran out of its deadline before the model ran.

    Nobody reads this answer; it exists so the work stops and the log and metrics say why.
    HTTP 499 is nginx's "client closed request".
    """

    code = "cancelled"
    http_status = 499
    grpc_status = "CANCELLED"
