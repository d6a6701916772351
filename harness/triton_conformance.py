"""The same tritonclient calls against the real Triton and against this service: what each answers.

Runs in the peer's environment (``.venv-peer``, ``make peer``: PyPI's ``nvidia-pytriton``, whose
``tritonserver`` is Triton Inference Server itself). Its Python stub links the system libpython,
so start it with ``LD_LIBRARY_PATH`` set to the venv Python's library folder::

    LD_LIBRARY_PATH=$(.venv-peer/bin/python -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))') \\
        .venv-peer/bin/python -m harness.triton_conformance --http 127.0.0.1:8080 --grpc 127.0.0.1:9090 \\
        --image photo.jpg

It starts Triton on free 127.0.0.1 ports with a model named like this service's default and
declared with its tensors (IMAGE or URL in, BYTES ``[-1]``; the five EfficientNMS outputs), a
stand-in that answers no detections: what is compared is the protocol (health, metadata, the
shapes and datatypes of an answer, and how each bad request is refused), not the model. Every
call runs over REST and gRPC against both servers, and one JSON line per call says what each
server gave: an outline of a success (output names, datatypes, ranks, the batch dimension) or the
error's HTTP status or gRPC code. Run from the repository's root; of the project it imports only
:mod:`harness.ports` (the standard library).
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness.ports import free_ports

OUTPUTS = ("num_detections", "detection_boxes", "detection_scores", "detection_classes", "detection_labels")
OUTPUT_TYPES = {"num_detections": (np.int32, (-1, 1)), "detection_boxes": (np.float32, (-1, -1, 4)),
                "detection_scores": (np.float32, (-1, -1)), "detection_classes": (np.int32, (-1, -1)),
                "detection_labels": (np.bytes_, (-1, -1))}


def _no_detections(requests: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """The stand-in model: each request's batch, with no detection in any image (one padding row,
    as EfficientNMS pads: pytriton refuses empty BYTES outputs)."""
    answers = []
    for request in requests:
        batch = len(next(iter(request.values())))
        answers.append({"num_detections": np.zeros((batch, 1), np.int32),
                        "detection_boxes": np.zeros((batch, 1, 4), np.float32),
                        "detection_scores": np.zeros((batch, 1), np.float32),
                        "detection_classes": np.full((batch, 1), -1, np.int32),
                        "detection_labels": np.full((batch, 1), b"", np.object_)})
    return answers


def start_triton(model: str):
    """Triton on 127.0.0.1, serving the stand-in as ``model``; returns it and its REST and gRPC addresses."""
    from pytriton.model_config import ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    http, grpc_, metrics = free_ports(3)
    config = TritonConfig(http_address="127.0.0.1", http_port=http, grpc_address="127.0.0.1", grpc_port=grpc_,
                          metrics_address="127.0.0.1", metrics_port=metrics, log_verbose=0)
    # pytriton puts the repository and statistics APIs behind a token of its own by default; Triton
    # itself, as deployed, answers them: compare with that.
    triton = Triton(config=config, security_config=TritonSecurityConfig(restricted_endpoints=[]))
    triton.bind(
        model_name=model, infer_func=_no_detections,
        inputs=[Tensor(name="IMAGE", dtype=np.bytes_, shape=(-1,), optional=True),
                Tensor(name="URL", dtype=np.bytes_, shape=(-1,), optional=True)],
        outputs=[Tensor(name=name, dtype=dtype, shape=shape) for name, (dtype, shape) in OUTPUT_TYPES.items()],
        config=ModelConfig(batching=False),
    )
    triton.run()
    return triton, f"127.0.0.1:{http}", f"127.0.0.1:{grpc_}"


def _outline(result: Any) -> Any:
    """What is compared of an answer: output names, datatypes, ranks and batch size; not the values."""
    if hasattr(result, "get_response"):  # an inference result (either client)
        response = result.get_response(as_json=True) if "grpc" in type(result).__module__ else result.get_response()
        return {o["name"]: {"datatype": o["datatype"], "rank": len(o["shape"]), "batch": int(o["shape"][0])}
                for o in response["outputs"]}
    return result


def _error(exc: Exception) -> dict[str, Any]:
    """An error as the caller sees it: the HTTP status or the gRPC code, and whether it says why."""
    from tritonclient.utils import InferenceServerException

    if isinstance(exc, InferenceServerException):
        status = exc.status()
        return {"error": str(status).removeprefix("StatusCode.") if status else "none",
                "says_why": bool(exc.message())}
    if isinstance(exc, urllib.error.HTTPError):
        body = exc.read()
        return {"error": exc.code, "says_why": b"error" in body}
    return {"error": type(exc).__name__, "says_why": bool(str(exc))}


def _raw_post(address: str, path: str, body: bytes, headers: dict[str, str]) -> Any:
    request = urllib.request.Request(f"http://{address}{path}", data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status


def calls(http_address: str, grpc_address: str, model: str, image: bytes) -> dict[str, Callable[[], Any]]:
    """Each call by name, over each transport, against one server."""
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    http = httpclient.InferenceServerClient(http_address, network_timeout=120)
    grpc_ = grpcclient.InferenceServerClient(grpc_address)

    def infer(client: Any, module: Any, name: str, datatype: str, data: np.ndarray, shape: list[int],
              model_name: str = model, version: str = "") -> Any:
        tensor = module.InferInput(name, shape, datatype)
        if module is httpclient:
            tensor.set_data_from_numpy(data, binary_data=True)
        else:
            tensor.set_data_from_numpy(data)
        return client.infer(model_name, [tensor], model_version=version)

    images = lambda size: np.array([image] * size, dtype=np.object_)  # noqa: E731
    found: dict[str, Callable[[], Any]] = {}
    for transport, client, module in (("http", http, httpclient), ("grpc", grpc_, grpcclient)):
        as_json = {} if module is httpclient else {"as_json": True}
        found |= {
            f"{transport} server live": client.is_server_live,
            f"{transport} server ready": client.is_server_ready,
            f"{transport} model ready": lambda c=client: c.is_model_ready(model),
            f"{transport} unknown model ready": lambda c=client: c.is_model_ready("no-such-model"),
            f"{transport} model metadata": lambda c=client, j=as_json: {
                key: value for key, value in c.get_model_metadata(model, **j).items() if key in ("inputs", "outputs")},
            f"{transport} unknown model metadata": lambda c=client, j=as_json: c.get_model_metadata("no-such-model", **j),
            f"{transport} infer IMAGE B=1": lambda c=client, m=module: infer(c, m, "IMAGE", "BYTES", images(1), [1]),
            f"{transport} infer IMAGE B=4": lambda c=client, m=module: infer(c, m, "IMAGE", "BYTES", images(4), [4]),
            f"{transport} infer unknown model": lambda c=client, m=module: infer(
                c, m, "IMAGE", "BYTES", images(1), [1], model_name="no-such-model"),
            f"{transport} infer unknown version": lambda c=client, m=module: infer(
                c, m, "IMAGE", "BYTES", images(1), [1], version="7"),
            f"{transport} infer wrong datatype": lambda c=client, m=module: infer(
                c, m, "IMAGE", "INT32", np.zeros(1, np.int32), [1]),
            f"{transport} infer wrong shape": lambda c=client, m=module: infer(
                c, m, "IMAGE", "BYTES", images(1).reshape(1, 1), [1, 1]),
            f"{transport} infer unknown input": lambda c=client, m=module: infer(c, m, "PIXELS", "BYTES", images(1), [1]),
            f"{transport} statistics": lambda c=client, j=as_json: sorted(
                c.get_inference_statistics(model, **j)["model_stats"][0]),
            # pytriton loads its models from configuration, not from disk, so its index lists none:
            # what compares is the answer's type.
            f"{transport} repository index": lambda c=client: type(c.get_model_repository_index()).__name__,
        }
    length = struct.pack("<I", len(image))
    header = json.dumps({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": len(image) + 40}}]}).encode()
    found["http infer binary size past the body"] = lambda: _raw_post(
        http_address, f"/v2/models/{model}/infer", header + length + image,
        {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"})
    found["http infer header length past the body"] = lambda: _raw_post(
        http_address, f"/v2/models/{model}/infer", header, {"Inference-Header-Content-Length": "999999999"})
    found["http infer no inputs"] = lambda: _raw_post(
        http_address, f"/v2/models/{model}/infer", json.dumps({"inputs": []}).encode(), {})
    return found


def run(http_address: str, grpc_address: str, model: str, image: bytes) -> dict[str, Any]:
    answers = {}
    for name, call in calls(http_address, grpc_address, model, image).items():
        try:
            answers[name] = {"ok": _outline(call())}
        except Exception as exc:  # noqa: BLE001 - a refusal is what some calls are here to see
            answers[name] = _error(exc)
    return answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http", required=True, help="host:port of this service's REST API")
    parser.add_argument("--grpc", required=True, help="host:port of this service's gRPC API")
    parser.add_argument("--model", default="yolov5s", help="this service's model, which Triton's stand-in is named")
    parser.add_argument("--image", type=Path, required=True)
    args = parser.parse_args()
    image = args.image.read_bytes()
    triton, triton_http, triton_grpc = start_triton(args.model)
    try:
        peer = run(triton_http, triton_grpc, args.model, image)
    finally:
        triton.stop()
    service = run(args.http, args.grpc, args.model, image)
    for name in peer:
        print(json.dumps({"call": name, "triton": peer[name], "service": service[name]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
