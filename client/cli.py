"""``detect URL_OR_FILE``: ask a running service what is in a picture.

A URL is sent for the service to fetch (``POST /predict``, or gRPC ``Predict``
with ``--grpc``); a local file is uploaded (``POST /v1/detect``). Prints the
objects one per line, or with ``--boxes`` the detections (label, score, box)
as JSON. Exits 1 with the service's error message when it refuses.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import grpc
import requests


def _http(server: str, target: str, boxes: bool, timeout: float) -> Any:
    if Path(target).is_file():
        with open(target, "rb") as image:
            response = requests.post(f"{server}/v1/detect", files={"image": image}, timeout=timeout)
    elif boxes:
        response = requests.post(f"{server}/v1/detect", json={"url": target}, timeout=timeout)
    else:
        response = requests.post(f"{server}/predict", json={"url": target}, timeout=timeout)
    body = response.json()
    if response.status_code != 200:
        raise RuntimeError(f"{body['error']['code']}: {body['error']['message']}")
    if boxes:
        return [{key: d[key] for key in ("label", "score", "box")} for d in body["detections"]]
    return body["objects"] if "objects" in body else [d["label"] for d in body["detections"]]


def _grpc(target_address: str, url: str, timeout: float) -> list[str]:
    from proto import inference_pb2, inference_pb2_grpc

    with grpc.insecure_channel(target_address) as channel:
        stub = inference_pb2_grpc.InstanceDetectorStub(channel)
        try:
            return list(stub.Predict(inference_pb2.InstanceDetectorInput(url=url), timeout=timeout).objects)
        except grpc.RpcError as error:
            raise RuntimeError(f"{error.code().name}: {error.details()}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="detect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="an image URL (fetched by the service) or a local file (uploaded)")
    parser.add_argument("--boxes", action="store_true", help="print label, score and box of each detection as JSON")
    parser.add_argument("--grpc", action="store_true", help="ask over gRPC (URLs only, labels only)")
    parser.add_argument("--server", default="http://127.0.0.1:8080", help="HTTP address (default %(default)s)")
    parser.add_argument("--grpc-server", default="127.0.0.1:9090", help="gRPC address (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        if args.grpc:
            if args.boxes or Path(args.target).is_file():
                parser.error("--grpc takes a URL and prints labels only")
            result: Any = _grpc(args.grpc_server, args.target, args.timeout)
        else:
            result = _http(args.server.rstrip("/"), args.target, args.boxes, args.timeout)
    except (RuntimeError, requests.RequestException) as error:
        print(f"detect: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.boxes else "\n".join(result))
    return 0
