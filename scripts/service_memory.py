#!/usr/bin/env python3
"""The whole service's memory (PSS) after real traffic: right after it, and once it has idled.

Starts the service on 127.0.0.1 (the default layout unless ``--env`` says otherwise), sends the
evaluation photos ``--rounds`` times over ``/predict`` and gRPC ``Predict`` and twenty 320x320
camera frames to ``/v1/vision/detection`` (the photos' centre squares, as scripts.bench_cameras
sends them), then sums the proportional set size
(``/proc/<pid>/smaps_rollup``) of every process the service started: two seconds after the
traffic, and again ``--idle`` seconds after it (past model.memory.IDLE_TRIM_SECONDS, when each
serving process has handed its free heap back). Prints each process and both sums.

    python -m scripts.service_memory --serve artifacts/models --images ../shared/eval/images
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import requests

from common import procfs
from harness.image_server import serve_folder
from harness.predictors import IMAGE_SUFFIXES
from harness.service_process import served, service_processes
from model.cpu import describe
from model.memory import IDLE_TRIM_SECONDS
from scripts.bench_cameras import ROUTE, frames

CAMERA_FRAMES = 20


def pss_mib(pid: int) -> float:
    return procfs.smaps_rollup(pid)["Pss"] / 1024


def command(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:60]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", type=Path, required=True, metavar="REPOSITORY")
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=float, default=IDLE_TRIM_SECONDS + 3, help="seconds after the traffic")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    env = {"DETECTOR_URL_ALLOWLIST": "127.0.0.1", **dict(item.split("=", 1) for item in args.env)}
    photos = sorted(p for p in args.images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    print(f"CPU: {describe()}; {len(photos)} photos x {args.rounds} over HTTP and gRPC, {CAMERA_FRAMES} camera frames")
    with served(args.serve, env) as service, serve_folder(args.images) as base:
        for _ in range(args.rounds):
            for photo in photos:
                status, answer = service.predict_http(f"{base}/{photo.name}")
                if status != 200:
                    raise RuntimeError(f"/predict {photo.name}: HTTP {status} {answer}")
                service.predict_grpc(f"{base}/{photo.name}")
        regions = frames(args.images)
        for index in range(CAMERA_FRAMES):
            response = requests.post(f"{service.http_url}{ROUTE}", timeout=30,
                                     files={"image": ("frame.jpg", regions[index % len(regions)])})
            response.raise_for_status()
        traffic_ended = time.monotonic()
        for label, after in (("after the traffic", 2.0), ("idle", args.idle)):
            time.sleep(max(0.0, traffic_ended + after - time.monotonic()))
            pids = service_processes(service.run_dir, service.supervisord_pid)
            sizes = {pid: pss_mib(pid) for pid in pids}
            print(f"\n{label} ({after:.0f} s): {len(pids)} processes, PSS {sum(sizes.values()):.0f} MiB")
            for pid, size in sorted(sizes.items()):
                print(f"  {pid:7} {size:7.0f} MiB  {command(pid)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
