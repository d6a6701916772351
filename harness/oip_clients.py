"""The Open Inference Protocol's real clients, driven against a server: the client matrix.

Runs in the clients' own environment (``.venv-clients``, ``make clients``), not the service's:
``.venv-clients/bin/python harness/oip_clients.py --clients tritonclient --http 127.0.0.1:8080
--grpc 127.0.0.1:9090 --model yolov5s --image photo.jpg --url http://127.0.0.1:8000/photo.jpg``
(and ``--clients kserve``). For each client
(tritonclient http, http.aio, grpc, grpc.aio; the kserve SDK's REST and gRPC clients) and each
call (readiness, metadata, inference with image bytes, binary and JSON, and with URLs, batches
of 1 and 4) it prints one JSON line: client, call, and what came back (labels per image, shapes,
datatypes), or the error; tritonclient's also read the repository index and statistics, and
``--clients repository`` unloads and loads a model. Imports nothing of the project.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

OUTPUTS = ("num_detections", "detection_boxes", "detection_scores", "detection_classes", "detection_labels")


def _labels(counts: np.ndarray, labels: np.ndarray) -> list[list[str]]:
    return [[(v.decode() if isinstance(v, bytes) else str(v)) for v in row[: int(n)]]
            for n, row in zip(counts.reshape(-1), labels)]


def _summary(get: Callable[[str], np.ndarray]) -> dict[str, Any]:
    arrays = {name: get(name) for name in OUTPUTS}
    return {"labels": _labels(arrays["num_detections"], arrays["detection_labels"]),
            "shapes": {name: list(a.shape) for name, a in arrays.items()},
            "dtypes": {name: str(a.dtype) for name, a in arrays.items()}}


def _batch(kind: str, image: bytes, url: str, size: int) -> np.ndarray:
    return np.array([image if kind == "IMAGE" else url.encode()] * size, dtype=np.object_)


def tritonclient_calls(args: argparse.Namespace, image: bytes) -> dict[str, Callable[[], Any]]:
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    http = httpclient.InferenceServerClient(args.http, network_timeout=120)
    grpc_ = grpcclient.InferenceServerClient(args.grpc)

    def http_infer(kind: str, size: int, binary: bool) -> dict[str, Any]:
        tensor = httpclient.InferInput(kind, [size], "BYTES")
        data = _batch(kind, image, args.url, size)
        if kind == "IMAGE" and not binary:
            data = np.array([base64.b64encode(bytes(d)) for d in data], dtype=np.object_)
        tensor.set_data_from_numpy(data, binary_data=binary)
        outputs = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in OUTPUTS]
        return _summary(http.infer(args.model, [tensor], outputs=outputs).as_numpy)

    def grpc_infer(kind: str, size: int) -> dict[str, Any]:
        tensor = grpcclient.InferInput(kind, [size], "BYTES")
        tensor.set_data_from_numpy(_batch(kind, image, args.url, size))
        return _summary(grpc_.infer(args.model, [tensor], client_timeout=120).as_numpy)

    return {
        "tritonclient.http live": http.is_server_live,
        "tritonclient.http ready": http.is_server_ready,
        "tritonclient.http model ready": lambda: http.is_model_ready(args.model),
        "tritonclient.http server metadata": http.get_server_metadata,
        "tritonclient.http model metadata": lambda: http.get_model_metadata(args.model),
        "tritonclient.http IMAGE binary B=1": lambda: http_infer("IMAGE", 1, True),
        "tritonclient.http IMAGE binary B=4": lambda: http_infer("IMAGE", 4, True),
        "tritonclient.http IMAGE json B=1": lambda: http_infer("IMAGE", 1, False),
        "tritonclient.http URL json B=1": lambda: http_infer("URL", 1, False),
        "tritonclient.http URL binary B=4": lambda: http_infer("URL", 4, True),
        "tritonclient.grpc live": grpc_.is_server_live,
        "tritonclient.grpc ready": grpc_.is_server_ready,
        "tritonclient.grpc model ready": lambda: grpc_.is_model_ready(args.model),
        "tritonclient.grpc server metadata": lambda: grpc_.get_server_metadata(as_json=True),
        "tritonclient.grpc model metadata": lambda: grpc_.get_model_metadata(args.model, as_json=True),
        "tritonclient.grpc IMAGE B=1": lambda: grpc_infer("IMAGE", 1),
        "tritonclient.grpc IMAGE B=4": lambda: grpc_infer("IMAGE", 4),
        "tritonclient.grpc URL B=1": lambda: grpc_infer("URL", 1),
        "tritonclient.grpc URL B=4": lambda: grpc_infer("URL", 4),
        "tritonclient.http repository index": http.get_model_repository_index,
        "tritonclient.http statistics": lambda: http.get_inference_statistics(args.model),
        "tritonclient.grpc repository index": lambda: grpc_.get_model_repository_index(as_json=True),
        "tritonclient.grpc statistics": lambda: grpc_.get_inference_statistics(args.model, as_json=True),
    }


def repository_calls(args: argparse.Namespace, image: bytes) -> dict[str, Callable[[], Any]]:
    """tritonclient's model repository calls on ``--spare``: unload over one transport, load over the
    other, each followed by what the other transport (another process) then says."""
    import time

    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    http = httpclient.InferenceServerClient(args.http, network_timeout=300)
    grpc_ = grpcclient.InferenceServerClient(args.grpc)
    # gRPC metadata keys are lower case; HTTP's header is the same key.
    auth = {"authorization": f"Bearer {args.token}"} if args.token else {}

    def until(ready: Callable[[str], bool], expected: bool) -> float:
        """Seconds until the other transport's process agrees with what this one just did."""
        started = time.monotonic()
        while ready(args.spare) != expected:
            if time.monotonic() - started > 120:
                raise TimeoutError(f"still ready={not expected} after 120 s")
            time.sleep(0.1)
        return round(time.monotonic() - started, 2)

    return {
        "tritonclient.http unload": lambda: http.unload_model(args.spare, headers=auth) or "ok",
        "tritonclient.grpc follows unload": lambda: until(grpc_.is_model_ready, False),
        "tritonclient.http index after unload": lambda: [m for m in http.get_model_repository_index()
                                                        if m["name"] == args.spare],
        "tritonclient.grpc load": lambda: grpc_.load_model(args.spare, headers=auth) or "ok",
        "tritonclient.http follows load": lambda: until(http.is_model_ready, True),
        "tritonclient.grpc index after load": lambda: [m for m in grpc_.get_model_repository_index(
            as_json=True)["models"] if m["name"] == args.spare],
    }


def triton_async_calls(args: argparse.Namespace, image: bytes) -> dict[str, Callable[[], Any]]:
    """tritonclient's asyncio clients."""
    import tritonclient.grpc.aio as grpc_aio
    import tritonclient.http.aio as http_aio

    async def triton_http(kind: str, size: int) -> dict[str, Any]:
        client = http_aio.InferenceServerClient(args.http, conn_timeout=120)
        try:
            assert await client.is_server_ready() and await client.is_model_ready(args.model)
            tensor = http_aio.InferInput(kind, [size], "BYTES")
            tensor.set_data_from_numpy(_batch(kind, image, args.url, size), binary_data=True)
            return _summary((await client.infer(args.model, [tensor])).as_numpy)
        finally:
            await client.close()

    async def triton_grpc(kind: str, size: int) -> dict[str, Any]:
        client = grpc_aio.InferenceServerClient(args.grpc)
        try:
            assert await client.is_server_ready() and await client.is_model_ready(args.model)
            tensor = grpc_aio.InferInput(kind, [size], "BYTES")
            tensor.set_data_from_numpy(_batch(kind, image, args.url, size))
            return _summary((await client.infer(args.model, [tensor])).as_numpy)
        finally:
            await client.close()

    return {
        "tritonclient.http.aio IMAGE binary B=1": lambda: asyncio.run(triton_http("IMAGE", 1)),
        "tritonclient.http.aio URL binary B=4": lambda: asyncio.run(triton_http("URL", 4)),
        "tritonclient.grpc.aio IMAGE B=4": lambda: asyncio.run(triton_grpc("IMAGE", 4)),
        "tritonclient.grpc.aio URL B=1": lambda: asyncio.run(triton_grpc("URL", 1)),
    }


def kserve_calls(args: argparse.Namespace, image: bytes) -> dict[str, Callable[[], Any]]:
    """The kserve SDK's clients (asyncio only). Not in the same process as tritonclient: both register
    the protocol's messages under the package ``inference`` in protobuf's one descriptor pool."""
    sys.argv = sys.argv[:1]  # kserve parses the command line as its model server's when imported
    from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest
    from kserve.inference_client import RESTConfig

    def kserve_outputs(response: Any) -> dict[str, Any]:
        arrays = {o.name: o.as_numpy() for o in response.outputs}
        return _summary(lambda name: arrays[name])

    async def kserve_rest(kind: str, size: int) -> dict[str, Any]:
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=120))
        base = f"http://{args.http}"
        try:
            assert await client.is_server_ready(base) and await client.is_model_ready(base, args.model)
            data = [base64.b64encode(image).decode() if kind == "IMAGE" else args.url] * size
            request = InferRequest(args.model, [InferInput(kind, [size], "BYTES", data)])
            return kserve_outputs(await client.infer(base, request, model_name=args.model))
        finally:
            await client.close()

    async def kserve_grpc(kind: str, size: int) -> dict[str, Any]:
        client = InferenceGRPCClient(args.grpc, timeout=120)
        try:
            assert await client.is_server_ready() and await client.is_model_ready(args.model)
            data = [image if kind == "IMAGE" else args.url.encode()] * size
            request = InferRequest(args.model, [InferInput(kind, [size], "BYTES", data)])
            return kserve_outputs(await client.infer(request))
        finally:
            await client.close()

    return {
        "kserve rest IMAGE json B=1": lambda: asyncio.run(kserve_rest("IMAGE", 1)),
        "kserve rest URL json B=4": lambda: asyncio.run(kserve_rest("URL", 4)),
        "kserve grpc IMAGE B=4": lambda: asyncio.run(kserve_grpc("IMAGE", 4)),
        "kserve grpc URL B=1": lambda: asyncio.run(kserve_grpc("URL", 1)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http", required=True, help="host:port of the REST API")
    parser.add_argument("--grpc", required=True, help="host:port of the gRPC API")
    parser.add_argument("--model", required=True)
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--url", required=True, help="the same photo at a URL the server may fetch")
    parser.add_argument("--clients", choices=("tritonclient", "kserve", "repository"), required=True,
                        help="which library's clients (one process each: their protobuf modules collide); "
                             "repository: tritonclient's load and unload of --spare")
    parser.add_argument("--spare", help="with --clients repository: a model to unload and load again")
    parser.add_argument("--token", default="", help="with --clients repository: the operator's token")
    args = parser.parse_args()
    image = args.image.read_bytes()
    if args.clients == "tritonclient":
        calls = {**tritonclient_calls(args, image), **triton_async_calls(args, image)}
    elif args.clients == "repository":
        calls = repository_calls(args, image)
    else:
        calls = kserve_calls(args, image)
    for name, call in calls.items():
        client, _, what = name.partition(" ")
        try:
            result = call()
            print(json.dumps({"client": client, "call": what, "result": result}, default=str), flush=True)
        except Exception as exc:  # noqa: BLE001 - every call is reported, failures included
            print(json.dumps({"client": client, "call": what, "error": f"{type(exc).__name__}: {exc}",
                              "trace": traceback.format_exc()[-2000:]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
