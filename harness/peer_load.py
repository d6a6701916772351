"""One client, Triton's own (``tritonclient.http``), against any server of the Open Inference Protocol.

Runs in the peer's environment (``.venv-peer``, which has ``tritonclient`` through ``nvidia-pytriton``);
imports nothing of the project, so the peer and this service meet exactly the same client. Each
photo is sent as it is stored, as one ``IMAGE`` BYTES element (the binary tensor extension), and the
answer's ``detection_labels`` read back. First every photo once (its labels, for the acceptance
score), then for each concurrency C, C threads (each with its own client, one connection) send the
photos round-robin back to back for ``--seconds``. Prints one JSON object: per concurrency the
requests/s, p50 and p99 in milliseconds and the failures; and each photo's labels.

    .venv-peer/bin/python harness/peer_load.py --url 127.0.0.1:8080 --images ../shared/eval/images
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

SUFFIXES = (".jpg", ".jpeg", ".png")


def _infer(client, model: str, data: bytes) -> list[str]:
    import tritonclient.http as http

    image = http.InferInput("IMAGE", [1], "BYTES")
    image.set_data_from_numpy(np.array([data], dtype=np.object_), binary_data=True)
    outputs = [http.InferRequestedOutput("detection_labels", binary_data=True),
               http.InferRequestedOutput("num_detections", binary_data=True)]
    result = client.infer(model, [image], outputs=outputs)
    count = int(result.as_numpy("num_detections").reshape(-1)[0])
    return [label.decode() for label in result.as_numpy("detection_labels").reshape(-1)[:count]]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def run(url: str, model: str, photos: dict[str, bytes], concurrency: int, seconds: float) -> dict[str, float]:
    import tritonclient.http as http

    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    names = sorted(photos)
    stop_at = time.perf_counter() + seconds

    def client_loop(offset: int) -> None:
        client = http.InferenceServerClient(url=url, connection_timeout=10.0, network_timeout=30.0)
        index = offset
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                _infer(client, model, photos[names[index % len(names)]])
                spent = time.perf_counter() - started
                with lock:
                    latencies.append(spent)
            except Exception:  # counted, and the load goes on as a real client's would
                with lock:
                    failures[0] += 1
            index += 1
        client.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(i * 5,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {"concurrency": concurrency, "requests": len(latencies), "failures": failures[0],
            "requests_per_s": len(latencies) / wall,
            "p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
            "p99_ms": _percentile(latencies, 0.99) * 1000 if latencies else float("nan")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="host:port of the server's HTTP API (127.0.0.1 only)")
    parser.add_argument("--model", default="yolov5s")
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    if not args.url.startswith("127.0.0.1:"):
        parser.error("load goes to 127.0.0.1 only")
    import tritonclient.http as http

    photos = {p.name: p.read_bytes() for p in sorted(args.images.iterdir()) if p.suffix.lower() in SUFFIXES}
    client = http.InferenceServerClient(url=args.url, network_timeout=60.0)
    labels = {name: _infer(client, args.model, data) for name, data in photos.items()}
    client.close()
    levels = [run(args.url, args.model, photos, int(c), args.seconds) for c in args.concurrency.split(",")]
    print(json.dumps({"levels": levels, "labels": labels}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
