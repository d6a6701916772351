"""The clients tools and tests call the service with, and the acceptance test's score.

``http_predictor`` and ``grpc_predictor`` call ``/predict`` and ``Predict`` as a user would;
``v1_predictor``, ``v2_http_predictor`` and ``v2_grpc_predictor`` the same image URL over
``/v1/detect`` and the inference protocol (REST, gRPC), for comparing the three;
``score`` is the external acceptance test's per-image score, ``evaluate`` and ``mean_score``
apply it over labelled photos; ``percentile`` summarises latencies.
"""

from __future__ import annotations

import itertools
import json
import threading
import urllib.request
from collections import Counter
from typing import Callable

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

Predict = Callable[[str], list[str]]


def score(expected: list[str], predicted: list[str]) -> float:
    if not expected and not predicted:
        return 1.0
    matches = sum((Counter(expected) & Counter(predicted)).values())
    return 2 * matches / (len(expected) + len(predicted))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"},
                                     method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def http_predictor(base_url: str) -> Predict:
    def predict(image_url: str) -> list[str]:
        return _post_json(f"{base_url.rstrip('/')}/predict", {"url": image_url})["objects"]

    return predict


def grpc_predictor(target: str, channels: int = 1) -> Predict:
    """``Predict`` over one channel, as most clients call; or over ``channels`` connections, each
    calling thread keeping to one, as docs/api.md advises a client that sends calls at once (a
    connection reaches one of the two gRPC servers)."""
    import grpc

    from proto import inference_pb2, inference_pb2_grpc

    # Without a pool of its own, each channel to the same address would share one connection.
    options = [("grpc.use_local_subchannel_pool", 1)] if channels > 1 else []
    opened = [grpc.insecure_channel(target, options=options) for _ in range(channels)]
    for channel in opened:  # connected before the first timed call
        grpc.channel_ready_future(channel).result(timeout=60)
    stubs = [inference_pb2_grpc.InstanceDetectorStub(channel) for channel in opened]
    handed_out = itertools.count()
    mine = threading.local()

    def predict(image_url: str) -> list[str]:
        if not hasattr(mine, "stub"):
            mine.stub = stubs[next(handed_out) % channels]
        return list(mine.stub.Predict(inference_pb2.InstanceDetectorInput(url=image_url), timeout=120).objects)

    return predict


def evaluate(predict: Predict, base_url: str, labels: dict[str, list[str]]) -> dict[str, dict]:
    """Per-image expected, predicted and score, in the labels' order."""
    results = {}
    for name, expected in labels.items():
        predicted = predict(f"{base_url}/{name}")
        results[name] = {"expected": expected, "predicted": predicted, "score": score(expected, predicted)}
    return results


def mean_score(results: dict[str, dict]) -> float:
    return sum(r["score"] for r in results.values()) / len(results)


def v1_predictor(base_url: str) -> Predict:
    def predict(image_url: str) -> list[str]:
        return [d["label"] for d in _post_json(f"{base_url.rstrip('/')}/v1/detect", {"url": image_url})["detections"]]

    return predict


def v2_http_predictor(base_url: str, model: str) -> Predict:
    """``POST /v2/models/<model>/infer`` with the URL as a JSON BYTES input, labels from the JSON answer."""

    def predict(image_url: str) -> list[str]:
        body = {"inputs": [{"name": "URL", "datatype": "BYTES", "shape": [1], "data": [image_url]}],
                "outputs": [{"name": "detection_labels"}]}
        answer = _post_json(f"{base_url.rstrip('/')}/v2/models/{model}/infer", body)
        return [label for label in answer["outputs"][0]["data"] if label]

    return predict


def v2_grpc_predictor(target: str, model: str) -> Predict:
    """``inference.GRPCInferenceService/ModelInfer`` with the URL in typed contents."""
    import struct

    import grpc

    from proto import grpc_inference_pb2 as pb
    from proto import grpc_inference_pb2_grpc

    stub = grpc_inference_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(target))
    tensor = pb.ModelInferRequest.InferInputTensor

    def predict(image_url: str) -> list[str]:
        reply = stub.ModelInfer(pb.ModelInferRequest(
            model_name=model, inputs=[tensor(name="URL", datatype="BYTES", shape=[1],
                                             contents=pb.InferTensorContents(bytes_contents=[image_url.encode()]))],
            outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="detection_labels")]), timeout=120)
        raw, labels, offset = reply.raw_output_contents[0], [], 0
        while offset < len(raw):
            (length,) = struct.unpack_from("<I", raw, offset)
            labels.append(raw[offset + 4:offset + 4 + length].decode())
            offset += 4 + length
        return [label for label in labels if label]

    return predict
