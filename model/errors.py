"""Typed failures shared by both transports.

Each error knows its stable machine code, the HTTP status and the gRPC status
name it maps to, so the HTTP and gRPC adapters translate it without any
per-transport decision logic.
"""

from __future__ import annotations


class DetectorError(Exception):
    """Base of every error the caller is allowed to see; the message is safe to return.

    ``choices`` lists the accepted values when the caller picked one that is
    not among them, so a client can correct itself without reading the docs.
    """

    code = "internal"
    http_status = 500
    grpc_status = "INTERNAL"

    def __init__(self, message: str, choices: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.choices = choices


class InvalidRequest(DetectorError):
    code = "invalid_request"
    http_status = 400
    grpc_status = "INVALID_ARGUMENT"


class InvalidURL(DetectorError):
    code = "invalid_url"
    http_status = 400
    grpc_status = "INVALID_ARGUMENT"


class AddressNotAllowed(DetectorError):
    code = "address_not_allowed"
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


class ModelNotReady(DetectorError):
    code = "model_not_ready"
    http_status = 503
    grpc_status = "UNAVAILABLE"
