#!/usr/bin/env python3
"""Where a /predict call's time goes, stage by stage, against the forward pass of the same photos.

In this process, with the service's own code and numerics (DETECTOR_PRECISION
auto), each photo runs through every stage the request path has: decode
(open at a reduced JPEG scale, orient), the pixels' copy, preview copy, on the
model thread the shrink to the model's side and scaling to 0..1, letterbox, body, finish (decode head, NMS, boxes back), the JSON
and protobuf answers. Then the real service, started here on 127.0.0.1, answers
the same photos at c=1 over HTTP through nginx (a connection per call, as curl
makes, and one kept-alive connection), HTTP straight to gunicorn's Unix socket
(so the nginx hop shows), and gRPC.

Printed: each stage's median per photo, and each transport's p50 with its ratio
to the forward pass (letterbox + body + finish) of the same photos in the same run,
twice: as measured here, and as the service itself times it (/v1/detect's
``timing_ms.inference``), which runs with the service's short OpenMP spin. Then each
photo's own decode, forward and /predict (HTTP via nginx, gRPC), and the end-to-end ratio
over the 640-class photos (longest side 600 to 800 px), the photos issue 26's bar names.

    python -m scripts.bench_stages --serve artifacts/models/yolov5s/1 --images ../shared/eval/images
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import torch
from PIL import Image

from exporters.compute import to_compute
from common.settings import Settings
from model.cpu import describe
from model.detector import Detector
from model.input_image import to_input
from serving.images import PREVIEW_MAX_SIDE, finish, limit_side, open_near, to_pixels
from model.memory import keep_activations_on_heap
from model.precision import BF16
from harness.image_server import serve_folder
from harness.predictors import IMAGE_SUFFIXES, grpc_predictor, http_predictor
from harness.service_process import served


# The longest side of a "640-class" photo (issue 26's end-to-end bar), in pixels.
CLASS_640 = (600, 800)


def timed(stages: dict[str, list[float]], name: str, work: Callable[[], object]) -> object:
    started = time.perf_counter()
    result = work()
    stages.setdefault(name, []).append((time.perf_counter() - started) * 1000)
    return result


def in_process(model_dir: Path, photos: list[Path], rounds: int) -> dict[str, list[float]]:
    """Each stage of the request path, timed on every photo, ``rounds`` times (after one untimed round)."""
    from proto import inference_pb2

    settings = Settings.from_env({"DETECTOR_MODEL_DIR": str(model_dir)})
    torch.set_num_threads(settings.torch_threads)
    keep_activations_on_heap()  # as a serving process does (serving.pipeline)
    detector = Detector.load(model_dir, precision=settings.precision)
    detector.warm_up()
    module, body = detector._module, detector._body  # the stages the detector runs, one by one
    max_side = detector.card.max_side
    bf16 = detector.precision == BF16  # the module's own numerics switch, as model.precision set it
    dtype = torch.bfloat16 if bf16 else torch.float32
    stages: dict[str, list[float]] = {}

    def one_round(timings: dict[str, list[float]]) -> None:
        for photo in photos:
            data = photo.read_bytes()
            upright = timed(timings, "decode", lambda: finish(open_near(data, settings.max_image_pixels, max_side)[0]))
            pixels = timed(timings, "pixels", lambda: to_pixels(upright))
            timed(timings, "preview copy", lambda: limit_side(upright, PREVIEW_MAX_SIDE))
            with torch.inference_mode():
                tensor = timed(timings, "shrink and scale", lambda: to_input(pixels, max_side))
                batch, scale, left, top = timed(timings, "letterbox", lambda: module.letterbox(tensor))
                if body is not None:
                    maps = timed(timings, "body", lambda: body(batch))
                else:
                    maps = timed(timings, "body", lambda: list(module.body(to_compute(batch, dtype, bf16))))
                timed(timings, "finish (head, NMS)", lambda: module.finish(
                    maps, tensor.shape[-2], tensor.shape[-1], scale, left, top))
                found = timed(timings, "forward (detector)", lambda: detector._detect(tensor, None, False, max_side))
            names = [d.label for d in found]  # type: ignore[union-attr]
            timed(timings, "JSON answer", lambda: json.dumps({"objects": names}))
            timed(timings, "protobuf answer",
                  lambda: inference_pb2.InstanceDetectorOutput(objects=names).SerializeToString())

    # On the detector's own model thread, as in service (OpenMP keeps one team per calling thread).
    for round_ in range(rounds + 1):
        detector._thread.call(one_round, {} if round_ == 0 else stages)
    return stages


def _post_predict(connection: http.client.HTTPConnection, url: str) -> object:
    """POST /predict for ``url`` on ``connection``; the answer's JSON, or RuntimeError on any other status."""
    connection.request("POST", "/predict", json.dumps({"url": url}), {"Content-Type": "application/json"})
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
    return json.loads(body)


def unix_http_predictor(socket_path: Path) -> Callable[[str], object]:
    """POST /predict straight to gunicorn's Unix socket, skipping nginx."""

    class Connection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(str(socket_path))

    def predict(url: str) -> object:
        connection = Connection("localhost", timeout=60)
        try:
            return _post_predict(connection, url)
        finally:
            connection.close()

    return predict


def keep_alive_http_predictor(http_url: str) -> Callable[[str], object]:
    """POST /predict through nginx on one persistent connection: the transport without a connect per call."""
    address = urlsplit(http_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    return lambda url: _post_predict(connection, url)


def per_photo_both_orders(transports: dict[str, Callable[[str], object]], urls: list[str],
                          rounds: int) -> dict[str, list[float]]:
    """Each transport alone over the photos (``rounds`` passes), the transports in order and then
    again in reverse order: ms per call.

    Timed once in order, the first one measured came out 4 ms slower than the same client timed
    later (41.3 against 37.4 ms, AMD EPYC, 2026-12-05); both orders reach every transport with the
    run's drift alike. Each block keeps to one transport, as a real client does: taking turns per
    photo sent every call to a process that had idled: all four came out 3 ms slower in a run.
    """
    times: dict[str, list[float]] = {name: [] for name in transports}
    for name in list(transports) + list(reversed(transports)):
        predict = transports[name]
        for url in urls:
            predict(url)
        for _ in range(rounds):
            for url in urls:
                started = time.perf_counter()
                predict(url)
                times[name].append((time.perf_counter() - started) * 1000)
    return times


def service_stages(http_url: str, urls: list[str], rounds: int) -> dict[str, list[float]]:
    """The service's own timing of each photo's stages (/v1/detect's ``timing_ms`` at c=1, ms)."""
    import requests

    stages: dict[str, list[float]] = {}
    for index in range(rounds + 1):
        for url in urls:
            response = requests.post(f"{http_url}/v1/detect", json={"url": url}, timeout=60)
            response.raise_for_status()
            if index:  # the first pass warms, as for /predict
                for stage, ms in response.json()["timing_ms"].items():
                    stages.setdefault(stage, []).append(float(ms))
    return stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", type=Path, metavar="MODEL_DIR", required=True,
                        help="the export to time, and to start the service with for the run")
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the photos")
    args = parser.parse_args(argv)
    photos = sorted(p for p in args.images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    print(f"CPU: {describe()}; {len(photos)} photos, {args.rounds} rounds")
    stages = in_process(args.serve, photos, args.rounds)
    forward = statistics.median(stages["forward (detector)"])
    print(f"\n{'stage (in process)':24} {'p50 ms':>8} {'mean ms':>8}")
    for name, times in stages.items():
        print(f"{name:24} {statistics.median(times):8.2f} {statistics.mean(times):8.2f}")
    with served(args.serve, {"DETECTOR_URL_ALLOWLIST": "127.0.0.1"}) as service, serve_folder(args.images) as base:
        urls = [f"{base}/{p.name}" for p in photos]
        transports = {
            "HTTP via nginx": http_predictor(service.http_url),
            "HTTP via nginx, kept": keep_alive_http_predictor(service.http_url),
            "HTTP to gunicorn": unix_http_predictor(service.run_dir / "http.sock"),
            "gRPC": grpc_predictor(service.grpc_target),
        }
        in_service = service_stages(service.http_url, urls, args.rounds)
        print(f"\n{'stage (in service)':24} {'p50 ms':>8} {'mean ms':>8}   (/v1/detect's timing_ms)")
        for name, times in in_service.items():
            print(f"{name:24} {statistics.median(times):8.2f} {statistics.mean(times):8.2f}")
        served_forward = statistics.median(in_service["inference"])
        print(f"\nforward p50: {forward:.1f} ms in process, {served_forward:.1f} ms in service")
        print(f"{'/predict at c=1':24} {'p50 ms':>8} {'/ in process':>13} {'/ in service':>13}")
        by_transport = per_photo_both_orders(transports, urls, args.rounds)
        for name, times in by_transport.items():
            p50 = statistics.median(times)
            print(f"{name:24} {p50:8.1f} {p50 / forward:13.2f} {p50 / served_forward:13.2f}", flush=True)
    print_per_photo(photos, stages, by_transport["HTTP via nginx"], by_transport["gRPC"])
    return 0


def per_photo(times: list[float], photos: int) -> list[float]:
    """Each photo's median, from timings taken over the photos in order, pass after pass."""
    return [statistics.median(times[index::photos]) for index in range(photos)]


def print_per_photo(photos: list[Path], stages: dict[str, list[float]], http: list[float], grpc: list[float]) -> None:
    """Each photo's decode, forward and /predict (HTTP via nginx, gRPC) p50, and the ratios for the
    640-class photos (longest side 600 to 800 px: those the model runs at or near its full side)."""
    count = len(photos)
    decode, forward = per_photo(stages["decode"], count), per_photo(stages["forward (detector)"], count)
    over_http, over_grpc = per_photo(http, count), per_photo(grpc, count)
    print(f"\n{'photo':22} {'size':>9} {'decode':>7} {'forward':>8} {'HTTP':>6} {'ratio':>6} {'gRPC':>6} {'ratio':>6}")
    ratios: dict[str, list[float]] = {"HTTP via nginx": [], "gRPC": []}
    for index, photo in enumerate(photos):
        with Image.open(photo) as opened:
            width, height = opened.size
        http_ratio, grpc_ratio = over_http[index] / forward[index], over_grpc[index] / forward[index]
        if CLASS_640[0] <= max(width, height) <= CLASS_640[1]:
            ratios["HTTP via nginx"].append(http_ratio)
            ratios["gRPC"].append(grpc_ratio)
        print(f"{photo.name[:22]:22} {f'{width}x{height}':>9} {decode[index]:7.1f} {forward[index]:8.1f} "
              f"{over_http[index]:6.1f} {http_ratio:6.2f} {over_grpc[index]:6.1f} {grpc_ratio:6.2f}")
    for name, found in ratios.items():
        if found:
            print(f"640-class photos ({len(found)}), {name} / forward: median {statistics.median(found):.2f}, "
                  f"{min(found):.2f} to {max(found):.2f}")


if __name__ == "__main__":
    sys.exit(main())
