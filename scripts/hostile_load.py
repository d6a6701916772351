#!/usr/bin/env python3
"""Attack a running service the cheap ways issue 13 found, and print what each costs it.

Starts the real service (``--serve MODEL_DIR``: supervisord, nginx, gunicorn,
the gRPC server on free 127.0.0.1 ports) and a hostile image server on
127.0.0.1, then measures, each scenario bounded in count and time:

* slow clients: a good request's latency beside 200 connections dripping headers or bodies;
* slow image servers: how long requests for URLs whose server drips its headers take, and a
  good request's latency meanwhile (HTTP and gRPC);
* overload: a burst of 32 requests held by slow image servers, against the admission limit;
* memory bombs: the HTTP worker's peak RSS growth for one, four concurrent, and a batch of 16
  95 KB PNGs of 49 MP of 16-bit pixels;
* a 20 MB TIFF of 190,000 one-pixel pages, uploaded.

Every baseline is measured in the same run. Numbers go to docs/reliability.md.

    python -m scripts.hostile_load --serve artifacts/models --images ../shared/eval/images
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import requests

from harness.image_server import ImageServer, many_page_tiff
from harness.service_process import ServiceProcess, peak_rss_mib
from harness.slow_clients import dripping_connections

REPO_ROOT = Path(__file__).resolve().parent.parent


def timed(fn, *args) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


GOOD_TIMEOUT = 30.0


def good_request(service: ServiceProcess, url: str) -> float:
    """Seconds until a good predict is answered 200 (GOOD_TIMEOUT if it is not answered in time; inf if refused)."""
    started = time.perf_counter()
    try:
        response = requests.post(f"{service.http_url}/predict", json={"url": url}, timeout=GOOD_TIMEOUT)
    except requests.RequestException:
        return GOOD_TIMEOUT
    return time.perf_counter() - started if response.status_code == 200 else float("inf")


def good_latencies(service: ServiceProcess, url: str, count: int = 3) -> list[float]:
    return [good_request(service, url) for _ in range(count)]


def slow_clients(service: ServiceProcess, url: str, connections: int = 200) -> dict:
    baseline = good_latencies(service, url)
    with dripping_connections(service.http_port, connections, interval=1.0):
        time.sleep(1.0)
        during = good_latencies(service, url)
    return {"connections": connections, "baseline_max_s": max(baseline), "during_max_s": max(during)}


def slow_image_servers(service: ServiceProcess, images: ImageServer, good: str) -> dict:
    drip = images.url("/case/drip-headers")
    with ThreadPoolExecutor(13) as pool:
        http = [pool.submit(timed, service.predict_http, drip) for _ in range(8)]
        rpc = [pool.submit(timed, _grpc_status, service, drip) for _ in range(4)]
        time.sleep(0.5)
        during = good_latencies(service, good, 3)
        http_times = [f.result()[0] for f in http]
        grpc_times = [f.result()[0] for f in rpc]
    return {"http_drip_max_s": max(http_times), "grpc_drip_max_s": max(grpc_times),
            "good_during_max_s": max(during), "fetch_deadline_s": float(service.env["DETECTOR_FETCH_DEADLINE"])}


def _grpc_status(service: ServiceProcess, url: str) -> str:
    try:
        service.predict_grpc(url, timeout=60)
        return "OK"
    except grpc.RpcError as error:
        return error.code().name


def overload(service: ServiceProcess, images: ImageServer) -> dict:
    slow = images.url("/case/slow-body")

    def one(_: int) -> tuple[float, int]:
        seconds, response = timed(lambda: requests.post(f"{service.http_url}/predict", json={"url": slow}, timeout=60))
        return seconds, response.status_code

    with ThreadPoolExecutor(32) as pool:
        futures = [pool.submit(one, i) for i in range(32)]
        time.sleep(0.5)
        good = good_request(service, images.url("/case/photo.jpg"))
        results = [f.result() for f in futures]
    refused = [seconds for seconds, status in results if status == 503]
    return {"burst": 32, "refused_503": len(refused), "refused_p50_s": statistics.median(refused) if refused else None,
            "held_504": sum(1 for _, status in results if status == 504), "good_during_s": good}


def memory_bombs(service: ServiceProcess, images: ImageServer) -> dict:
    bomb = images.url("/case/sixteen-bit-7000.png")
    # The decode budget is per process: the growth of the worker that grew most.
    start = {worker: peak_rss_mib(worker) for worker in service.http_worker_pids()}

    def growth() -> float:
        return max(peak_rss_mib(worker) - before for worker, before in start.items())

    found = {}
    found["one_s"], _ = timed(service.predict_http, bomb)
    found["one_growth_mib"] = growth()
    with ThreadPoolExecutor(4) as pool:
        started = time.perf_counter()
        list(pool.map(service.predict_http, [f"{bomb}?{i}" for i in range(4)]))
        found["four_s"] = time.perf_counter() - started
    found["four_growth_mib"] = growth()
    body = json.dumps({"urls": [f"{bomb}?b{i}" for i in range(16)]}).encode()
    found["batch16_s"], (status, _) = timed(service.post, "/v1/detect:batch", body, "application/json", 600)
    found["batch16_growth_mib"] = growth()
    found["batch16_status"] = status
    return found


def many_pages(service: ServiceProcess) -> dict:
    """Uploaded as a file: the time until the answer (the service decodes the first page only)."""
    data = many_page_tiff(190_000)
    seconds, response = timed(lambda: requests.post(f"{service.http_url}/v1/detect", files={"image": data}, timeout=300))
    return {"tiff_mb": len(data) / 1e6, "seconds": seconds, "status": response.status_code}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", type=Path, required=True, help="exported model directory to serve")
    parser.add_argument("--images", type=Path, required=True, help="folder with darknet_dog.jpg (../shared/eval/images)")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE service setting (repeatable)")
    parser.add_argument("--only", action="append", default=[], help="run only these scenarios (repeatable)")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    images = ImageServer(args.images)
    images.start()
    with tempfile.TemporaryDirectory(prefix="hostile-run-") as run_dir:
        service = ServiceProcess(REPO_ROOT, args.serve.resolve(), Path(run_dir), env)
        service.start()
        try:
            good = images.url("/case/photo.jpg")
            for name, scenario in (
                ("slow clients", lambda: slow_clients(service, good)),
                ("slow image servers", lambda: slow_image_servers(service, images, good)),
                ("overload", lambda: overload(service, images)),
                ("memory bombs", lambda: memory_bombs(service, images)),
                ("190,000-page TIFF", lambda: many_pages(service)),
            ):
                if args.only and name not in args.only:
                    continue
                result = scenario()
                print(f"{name:20s} " + "  ".join(
                    f"{key}={value:.2f}" if isinstance(value, float) else f"{key}={value}" for key, value in result.items()
                ), flush=True)
        finally:
            service.stop()
            images.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
