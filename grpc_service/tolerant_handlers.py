"""Register a servicer so that bytes that are not its request message are the caller's fault.

The generated ``add_*Servicer_to_server`` functions let grpcio deserialize each
request, and grpcio answers a message that does not parse (a string field that
is not UTF-8, or no protobuf at all) with ``INTERNAL "Exception deserializing
request!"``: our failure, by its code. Here the handlers take the raw bytes and
parse them themselves, so such a request gets ``INVALID_ARGUMENT``, is counted
and logged like every other bad request, and the servicer code is unchanged.
"""

from __future__ import annotations

from typing import Any, Callable

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from model.errors import InvalidRequest
from model.serving import record_error


def _parsing(impl: Callable[[Message, grpc.ServicerContext], Any], request_cls: type[Message]) -> Callable:
    def handler(raw: bytes, context: grpc.ServicerContext) -> Any:
        try:
            request = request_cls.FromString(raw)
        except DecodeError:
            error = InvalidRequest(
                f"the request is not a valid {request_cls.DESCRIPTOR.full_name} message (strings must be UTF-8)"
            )
            record_error("grpc", error.code, "", error.message)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{error.code}: {error.message}")
        return impl(request, context)

    return handler


def add_servicer(server: grpc.Server, service: ServiceDescriptor, servicer: object) -> None:
    """Serve every unary method of ``service`` from the same-named method of ``servicer``."""
    handlers = {
        method.name: grpc.unary_unary_rpc_method_handler(
            _parsing(getattr(servicer, method.name), GetMessageClass(method.input_type)),
            response_serializer=GetMessageClass(method.output_type).SerializeToString,
        )
        for method in service.methods
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
