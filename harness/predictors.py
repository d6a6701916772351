"""The clients tools and tests call the service with, and the acceptance test's score.

``http_predictor`` and ``grpc_predictor`` call ``/predict`` and ``Predict`` as a user would;
``score`` is the external acceptance test's per-image score, ``evaluate`` and ``mean_score``
apply it over labelled photos; ``percentile`` summarises latencies.
"""

from __future__ import annotations

import json
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


def http_predictor(base_url: str) -> Predict:
    def predict(image_url: str) -> list[str]:
        request = urllib.request.Request(
            f"{base_url.rstrip('/')}/predict", data=json.dumps({"url": image_url}).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())["objects"]

    return predict


def grpc_predictor(target: str) -> Predict:
    import grpc

    from proto import inference_pb2, inference_pb2_grpc

    channel = grpc.insecure_channel(target)
    stub = inference_pb2_grpc.InstanceDetectorStub(channel)

    def predict(image_url: str) -> list[str]:
        return list(stub.Predict(inference_pb2.InstanceDetectorInput(url=image_url), timeout=120).objects)

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
