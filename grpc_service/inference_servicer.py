"""gRPC adapter for the Open Inference Protocol: ``inference.GRPCInferenceService`` (proto/grpc_inference.proto).

Turns typed contents or ``raw_input_contents`` into :class:`inference_protocol.tensors.InferRequest`
and answers in ``raw_output_contents``; the model's tensors and the run through the facade are
:mod:`inference_protocol.model_io`. Errors become the same statuses as ``detection.v1.Detector/Detect``
(grpc_service.handlers), counted with ``transport="v2-grpc"``.
"""

from __future__ import annotations

import grpc

from common.errors import InvalidRequest, ModelNotFound, ModelNotReady
from grpc_service.handlers import deadline_of
from inference_protocol import extensions, model_io
from inference_protocol.tensors import InferRequest, InputTensor, decode_bytes, element_count
from proto import grpc_inference_pb2 as pb
from serving import DetectionService

TRANSPORT = "v2-grpc"


def _value(parameter: pb.InferParameter) -> object:
    choice = parameter.WhichOneof("parameter_choice")
    return None if choice is None else getattr(parameter, choice)


def _authorization(context: grpc.ServicerContext) -> str | None:
    """The caller's ``authorization`` metadata (the HTTP header's twin)."""
    return next((value for key, value in context.invocation_metadata() if key == "authorization"), None)


def _inputs(request: pb.ModelInferRequest) -> list[InputTensor]:
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidRequest(f"raw_input_contents holds {len(raw)} entries for {len(request.inputs)} input(s)")
    inputs = []
    for position, tensor in enumerate(request.inputs):
        shape = list(tensor.shape)
        if any(dimension < 0 for dimension in shape):
            raise InvalidRequest(f'input "{tensor.name}": shape dimensions must not be negative', field=tensor.name)
        if tensor.datatype != "BYTES":
            elements: list[bytes] = []
        elif raw:
            if tensor.HasField("contents"):
                raise InvalidRequest(f'input "{tensor.name}": give raw_input_contents or contents, not both')
            elements = decode_bytes(raw[position], element_count(shape), tensor.name)
        else:
            elements = list(tensor.contents.bytes_contents)
        inputs.append(InputTensor(tensor.name, tensor.datatype, shape, elements))
    return inputs


class InferenceServicer:
    """The protocol's calls and Triton's repository and statistics extensions; registered through
    grpc_service.handlers like the other services."""

    def __init__(self, service: DetectionService):
        self.service = service

    def ServerLive(self, request: pb.ServerLiveRequest, context: grpc.ServicerContext):  # noqa: N802
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request: pb.ServerReadyRequest, context: grpc.ServicerContext):  # noqa: N802
        return pb.ServerReadyResponse(ready=self.service.ready)

    def ModelReady(self, request: pb.ModelReadyRequest, context: grpc.ServicerContext):  # noqa: N802
        """Not ready, rather than an error, for a model or version that does not serve: as Triton answers."""
        try:
            model_io.resolve(self.service, request.name, request.version)
        except (ModelNotReady, ModelNotFound):
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    def ServerMetadata(self, request: pb.ServerMetadataRequest, context: grpc.ServicerContext):  # noqa: N802
        return pb.ServerMetadataResponse(name=model_io.SERVER_NAME, version=model_io.SERVER_VERSION,
                                         extensions=extensions.EXTENSIONS)

    def ModelMetadata(self, request: pb.ModelMetadataRequest, context: grpc.ServicerContext):  # noqa: N802
        found = model_io.metadata(self.service, model_io.resolve(self.service, request.name, request.version))
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=found.name, versions=found.versions, platform=found.platform,
            inputs=[tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"]) for t in found.inputs],
            outputs=[tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"]) for t in found.outputs],
        )

    def ModelInfer(self, request: pb.ModelInferRequest, context: grpc.ServicerContext):  # noqa: N802
        inference = InferRequest(
            model=request.model_name, version=request.model_version, inputs=_inputs(request),
            parameters={name: _value(value) for name, value in request.parameters.items()},
            outputs=[output.name for output in request.outputs] or None, id=request.id,
        )
        detector, tensors = model_io.infer(self.service, TRANSPORT, inference, context.is_active,
                                           deadline=deadline_of(context))
        output = pb.ModelInferResponse.InferOutputTensor
        return pb.ModelInferResponse(
            model_name=detector.name, model_version=str(detector.version or 1), id=request.id,
            outputs=[output(name=t.name, datatype=t.datatype, shape=t.shape) for t in tensors],
            raw_output_contents=[t.raw() for t in tensors],
        )

    def ModelStatistics(self, request: pb.ModelStatisticsRequest, context: grpc.ServicerContext):  # noqa: N802
        found = extensions.statistics(self.service, request.name, request.version)
        return pb.ModelStatisticsResponse(model_stats=[pb.ModelStatistics(**entry) for entry in found])

    def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: grpc.ServicerContext):  # noqa: N802
        entry = pb.RepositoryIndexResponse.ModelIndex
        return pb.RepositoryIndexResponse(
            models=[entry(**found) for found in extensions.index(self.service, request.ready)])

    def RepositoryModelLoad(self, request: pb.RepositoryModelLoadRequest, context: grpc.ServicerContext):  # noqa: N802
        extensions.check_load_parameters(dict(request.parameters))
        self.service.load_model(request.model_name, _authorization(context))
        return pb.RepositoryModelLoadResponse()

    def RepositoryModelUnload(self, request: pb.RepositoryModelUnloadRequest,  # noqa: N802
                              context: grpc.ServicerContext):
        extensions.check_load_parameters(dict(request.parameters))
        self.service.unload_model(request.model_name, _authorization(context))
        return pb.RepositoryModelUnloadResponse()
