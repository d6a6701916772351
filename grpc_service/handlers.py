"""Register servicers so that every failure becomes one counted, structured gRPC status.

Two jobs the generated ``add_*Servicer_to_server`` functions cannot do:

* grpcio deserializes each request itself and answers a message that does
  not parse (a string field that is not UTF-8, or no protobuf at all) with
  ``INTERNAL "Exception deserializing request!"``: our failure, by its code.
  Here the handlers take the raw bytes and parse them, so such a request is
  ``INVALID_ARGUMENT``.
* Servicer methods raise :class:`DetectorError`; the wrapper here is the one
  place that counts it and turns it into a status: the human message as the
  status message, and as ``grpc-status-details-bin`` a ``google.rpc.Status``
  carrying ``ErrorInfo`` (the error code as ``reason``), ``BadRequest`` (the
  field at fault, with the valid choices) and ``RetryInfo`` where retrying
  later is right. Clients read them with ``grpc_status.rpc_status.from_call``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from common.errors import DetectorError, InvalidRequest
from serving import record_error

log = logging.getLogger(__name__)

ERROR_DOMAIN = "instance-detector"


def deadline_of(context: grpc.ServicerContext) -> float | None:
    """The call's gRPC deadline as ``time.monotonic()`` time (None without one), for serving.deadline."""
    left = context.time_remaining()
    return None if left is None else time.monotonic() + left


def _packed(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def status_of(error: DetectorError) -> grpc.Status:
    """The rich status for ``error``: message for people, details for programs."""
    code = getattr(grpc.StatusCode, error.grpc_status)
    metadata = {"choices": ",".join(error.choices)} if error.choices else {}
    details = [_packed(error_details_pb2.ErrorInfo(reason=error.code, domain=ERROR_DOMAIN, metadata=metadata))]
    if error.field is not None:
        violation = error_details_pb2.BadRequest.FieldViolation(field=error.field, description=error.message)
        details.append(_packed(error_details_pb2.BadRequest(field_violations=[violation])))
    if error.retry_after is not None:
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=error.retry_after))))
    return rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=error.message, details=details)
    )


def _handled(impl: Callable[[Message, grpc.ServicerContext], Any], request_cls: type[Message], transport: str) -> Callable:
    def handler(raw: bytes, context: grpc.ServicerContext) -> Any:
        try:
            try:
                request = request_cls.FromString(raw)
            except DecodeError:
                raise InvalidRequest(
                    f"the request is not a valid {request_cls.DESCRIPTOR.full_name} message (strings must be UTF-8)"
                ) from None
            return impl(request, context)
        except DetectorError as error:
            record_error(transport, error)
            context.abort_with_status(status_of(error))
        except Exception:
            log.exception("unhandled error in %s", request_cls.DESCRIPTOR.full_name)
            error = DetectorError("internal server error")
            record_error(transport, error)
            context.abort_with_status(status_of(error))

    return handler


def add_servicer(server: grpc.Server, service: ServiceDescriptor, servicer: object, transport: str = "grpc") -> None:
    """Serve every unary method of ``service`` from the same-named method of ``servicer``; errors
    are counted with ``transport``."""
    handlers = {
        method.name: grpc.unary_unary_rpc_method_handler(
            _handled(getattr(servicer, method.name), GetMessageClass(method.input_type), transport),
            response_serializer=GetMessageClass(method.output_type).SerializeToString,
        )
        for method in service.methods
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
