#!/usr/bin/env python3
"""Score a running service the way the external acceptance test does.

For each labelled image: ``2 * matches / (len(expected) + len(predicted))``
where ``matches`` is the size of the multiset intersection of class names;
the result is the mean over images. The images are served from a local HTTP
server on 127.0.0.1 started here (the service needs ``127.0.0.1`` in
``DETECTOR_URL_ALLOWLIST``).

    python -m scripts.evaluate --url http://127.0.0.1:8080 --grpc 127.0.0.1:9090 \\
        --images ../shared/eval/images --labels ../shared/eval/labels.json
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import threading
import urllib.request
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator
from contextlib import contextmanager


Predict = Callable[[str], list[str]]


def score(expected: list[str], predicted: list[str]) -> float:
    if not expected and not predicted:
        return 1.0
    matches = sum((Counter(expected) & Counter(predicted)).values())
    return 2 * matches / (len(expected) + len(predicted))


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (a free port) for the duration; yields the base URL."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="HTTP base URL of the service, e.g. http://127.0.0.1:8080")
    parser.add_argument("--grpc", help="gRPC target of the service, e.g. 127.0.0.1:9090")
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--serve", type=Path, metavar="MODEL_DIR",
                        help="start the service with this export for the run (both transports, 127.0.0.1)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for --serve, e.g. DETECTOR_PRECISION=int8")
    args = parser.parse_args(argv)
    if args.serve:
        from scripts.bench import served

        settings = {"DETECTOR_URL_ALLOWLIST": "127.0.0.1", **dict(item.split("=", 1) for item in args.env)}
        with served(args.serve, settings) as service:
            args.url, args.grpc = service.http_url, service.grpc_target
            return run(args)
    if not args.url and not args.grpc:
        parser.error("give --url, --grpc, both, or --serve")
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Score each transport given in ``args`` over the labelled photos."""
    labels = json.loads(args.labels.read_text())
    transports = {"http": args.url and http_predictor(args.url), "grpc": args.grpc and grpc_predictor(args.grpc)}
    report = {}
    with serve_folder(args.images) as base:
        for transport, predict in transports.items():
            if not predict:
                continue
            results = evaluate(predict, base, labels)
            for name, result in results.items():
                print(f"{transport:4} {result['score']:.3f} {name}: expected {result['expected']} "
                      f"predicted {result['predicted']}")
            report[transport] = {"mean": mean_score(results), "images": results}
            print(f"{transport:4} mean score {report[transport]['mean']:.3f} over {len(results)} images")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
