"""The Open Inference Protocol's REST API (``/v2``), with Triton's binary tensor data extension.

A thin adapter: it turns JSON (and binary) tensors into :class:`inference_protocol.tensors.InferRequest`
and answers back; what a model's tensors mean, and running them through the facade, is
:mod:`inference_protocol.model_io`. Failures are the protocol's ``{"error": "..."}`` with the status
/v1 gives the same fault, counted with ``transport="v2-http"``.

Binary tensor data: a body whose first ``Inference-Header-Content-Length`` bytes are the JSON, the
rest each binary input's bytes in input order (``parameters.binary_data_size``); a BYTES element
there is a 4-byte little-endian length and its bytes. Outputs go binary where the request asks
(``binary_data`` per output, or ``binary_data_output`` for all), else as JSON ``data``. In JSON,
``IMAGE`` elements are base64 strings, ``URL`` elements plain strings.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from flask import Blueprint, Response, jsonify, request

from common.errors import InvalidRequest
from http_service.caller import caller_alive, caller_deadline
from http_service.errors import register_route_errors
from common.limits import upload_body_bytes
from inference_protocol import extensions, model_io
from inference_protocol.tensors import InferRequest, InputTensor, OutputTensor, decode_bytes, element_count
from serving import DetectionService

TRANSPORT = "v2-http"
HEADER_LENGTH = "Inference-Header-Content-Length"
# A repository call's body is a few parameters at most.
SMALL_BODY_BYTES = 64 * 1024


def _flatten(data: object) -> list[object]:
    if isinstance(data, list):
        return [item for part in data for item in _flatten(part)]
    return [data]


def _json_elements(tensor: dict[str, Any], name: str, count: int) -> list[bytes]:
    """A JSON input's BYTES elements: IMAGE as base64, URL as text."""
    data = _flatten(tensor.get("data"))
    if len(data) != count:
        raise InvalidRequest(f'input "{name}": its shape says {count} element(s), its data holds {len(data)}',
                             field=name)
    if not all(isinstance(item, str) for item in data):
        raise InvalidRequest(f'input "{name}": BYTES data must be strings (IMAGE: base64)', field=name)
    if name != "IMAGE":
        return [str(item).encode() for item in data]
    try:
        return [base64.b64decode(str(item), validate=True) for item in data]
    except (binascii.Error, ValueError):
        raise InvalidRequest('input "IMAGE": in JSON, each element is an image in base64', field=name) from None


def _body() -> tuple[dict[str, Any], bytes]:
    """The JSON header and the binary section after it (empty without the binary extension)."""
    raw = request.get_data(cache=False)
    declared = request.headers.get(HEADER_LENGTH)
    if declared is None:
        header, binary = raw, b""
    else:
        if not declared.isdigit() or not 0 < int(declared) <= len(raw):
            raise InvalidRequest(f"{HEADER_LENGTH} must be the JSON header's length, from 1 to the body's "
                                 f"{len(raw)} bytes, got {declared!r}")
        header, binary = raw[:int(declared)], raw[int(declared):]
    try:
        body = json.loads(header)
    except (ValueError, RecursionError):
        raise InvalidRequest("the inference request must be JSON (its header, with the binary extension)") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the inference request must be a JSON object")
    return body, binary


def _small_json() -> dict[str, Any]:
    """The optional JSON object of a repository call (an empty body is ``{}``)."""
    raw = request.get_data(cache=False)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidRequest("the request body must be JSON, or empty") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


def _parameters(node: dict[str, Any], where: str) -> dict[str, Any]:
    parameters = node.get("parameters", {})
    if not isinstance(parameters, dict):
        raise InvalidRequest(f"{where}: parameters must be a JSON object")
    return parameters


def _inputs(body: dict[str, Any], binary: bytes) -> list[InputTensor]:
    tensors = body.get("inputs")
    if not isinstance(tensors, list) or not all(isinstance(t, dict) for t in tensors):
        raise InvalidRequest('"inputs" must be a list of tensors', field="inputs")
    inputs, offset = [], 0
    for tensor in tensors:
        name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
        if not isinstance(name, str) or not isinstance(datatype, str):
            raise InvalidRequest('each input needs a "name" and a "datatype"', field="inputs")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise InvalidRequest(f'input "{name}": "shape" must be a list of non-negative integers', field=name)
        size = _parameters(tensor, f'input "{name}"').get("binary_data_size")
        if datatype != "BYTES":
            inputs.append(InputTensor(name, datatype, shape, []))  # refused by model_io, which names the datatype
            offset += size if isinstance(size, int) and not isinstance(size, bool) else 0
            continue
        count = element_count(shape)
        if size is None:
            inputs.append(InputTensor(name, datatype, shape, _json_elements(tensor, name, count)))
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise InvalidRequest(f'input "{name}": binary_data_size {size!r} does not fit the {len(binary) - offset} '
                                 "binary bytes left in the body", field=name)
        inputs.append(InputTensor(name, datatype, shape, decode_bytes(binary[offset:offset + size], count, name)))
        offset += size
    if offset != len(binary):
        raise InvalidRequest(f"the body holds {len(binary) - offset} binary bytes that no input's binary_data_size "
                             "accounts for")
    return inputs


def _outputs(body: dict[str, Any]) -> tuple[list[str] | None, set[str], bool]:
    """The outputs asked for (None: all), those of them asked for as binary, and the request-wide
    default (binary_data_output), which also applies to every output when none is named."""
    default = _parameters(body, "the request").get("binary_data_output", False)
    if not isinstance(default, bool):
        raise InvalidRequest("parameter binary_data_output must be a boolean")
    asked = body.get("outputs")
    if asked is None:
        return None, set(), default
    if not isinstance(asked, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in asked):
        raise InvalidRequest('"outputs" must be a list of {"name": ...} objects', field="outputs")
    binary = {o["name"] for o in asked if _parameters(o, f'output "{o["name"]}"').get("binary_data", default) is True}
    return [o["name"] for o in asked], binary, default


def _answer(detector_name: str, version: object, request_id: str, tensors: list[OutputTensor],
            binary: set[str]) -> Response:
    """The JSON answer, with the outputs named in ``binary`` after it as binary data."""
    described, blobs = [], []
    for tensor in tensors:
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape}
        if tensor.name in binary:
            blob = tensor.raw()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = tensor.listed()
        described.append(entry)
    body: dict[str, Any] = {"model_name": detector_name, "model_version": str(version or 1)}
    if request_id:
        body["id"] = request_id
    body["outputs"] = described
    header = json.dumps(body, separators=(",", ":")).encode()
    if not blobs:
        return Response(header, content_type="application/json")
    response = Response(header + b"".join(blobs), content_type="application/octet-stream")
    response.headers[HEADER_LENGTH] = str(len(header))
    return response


def v2_blueprint(service: DetectionService) -> Blueprint:
    api = Blueprint("v2", __name__)
    body_limit = upload_body_bytes(service.settings.fetch.max_bytes)

    register_route_errors(api, TRANSPORT, lambda error: {"error": error.message})

    @api.get("/v2")
    def server_metadata() -> Any:
        return jsonify({"name": model_io.SERVER_NAME, "version": model_io.SERVER_VERSION,
                        "extensions": extensions.EXTENSIONS})

    # Health answers carry the spec's JSON bodies (the kserve SDK reads them); Triton's clients read the status.
    @api.get("/v2/health/live")
    def live() -> Any:
        return jsonify({"live": True})

    @api.get("/v2/health/ready")
    def ready() -> Any:
        return jsonify({"ready": service.ready}), 200 if service.ready else 400

    @api.get("/v2/models/<name>")
    @api.get("/v2/models/<name>/versions/<version>")
    def model_metadata(name: str, version: str = "") -> Any:
        found = model_io.metadata(service, model_io.resolve(service, name, version))
        return jsonify({"name": found.name, "versions": found.versions, "platform": found.platform,
                        "inputs": found.inputs, "outputs": found.outputs})

    @api.get("/v2/models/<name>/ready")
    @api.get("/v2/models/<name>/versions/<version>/ready")
    def model_ready(name: str, version: str = "") -> Any:
        return jsonify({"name": model_io.resolve(service, name, version).name, "ready": True})

    @api.post("/v2/repository/index")
    def repository_index() -> Any:
        request.max_content_length = SMALL_BODY_BYTES
        ready_only = _small_json().get("ready", False)
        if not isinstance(ready_only, bool):
            raise InvalidRequest('"ready" must be a boolean', field="ready")
        return jsonify(extensions.index(service, ready_only))

    @api.post("/v2/repository/models/<name>/<any(load, unload):action>")
    def load_or_unload(name: str, action: str) -> Any:
        request.max_content_length = SMALL_BODY_BYTES
        extensions.check_load_parameters(_parameters(_small_json(), "the request"))
        change = service.load_model if action == "load" else service.unload_model
        change(name, request.headers.get("Authorization"))
        return jsonify({})

    @api.get("/v2/models/stats")
    @api.get("/v2/models/<name>/stats")
    @api.get("/v2/models/<name>/versions/<version>/stats")
    def stats(name: str = "", version: str = "") -> Any:
        return jsonify({"model_stats": extensions.statistics(service, name, version)})

    @api.post("/v2/models/<name>/infer")
    @api.post("/v2/models/<name>/versions/<version>/infer")
    def infer(name: str, version: str = "") -> Any:
        request.max_content_length = body_limit
        body, binary = _body()
        names, binary_outputs, binary_default = _outputs(body)
        request_id = body.get("id", "")
        inference = InferRequest(
            model=name, version=version, inputs=_inputs(body, binary), parameters=_parameters(body, "the request"),
            outputs=names, id=request_id if isinstance(request_id, str) else "",
        )
        detector, tensors = model_io.infer(service, TRANSPORT, inference, caller_alive(),
                                           deadline=caller_deadline())
        if names is None and binary_default:
            binary_outputs = {tensor.name for tensor in tensors}
        return _answer(detector.name, detector.version, inference.id, tensors, binary_outputs)

    return api
