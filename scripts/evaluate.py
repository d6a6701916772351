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
import json
import sys
from pathlib import Path

from harness.image_server import serve_folder
from harness.predictors import evaluate, grpc_predictor, http_predictor, mean_score
from harness.service_process import served


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
