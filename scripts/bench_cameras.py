#!/usr/bin/env python3
"""Cameras as Frigate's DeepStack detector drives them: how many frames are answered in time.

Frigate (``frigate/detectors/plugins/deepstack.py``) posts each region of motion as a 320x320
JPEG (Pillow's default quality) to ``/v1/vision/detection`` with an ``api_key`` form field, through
``requests.post`` (a new connection each time), and gives up after ``api_timeout``, 0.1 s by
default; each camera's detector then moves on to its next frame. Here N such cameras run at
once, each posting frames back to back for ``--seconds``: the frames are square crops of the
evaluation photos at 320x320. For each N it prints the share of frames answered within the
timeout, the frames/s answered in time, and from the service's metrics what became of the rest:
dropped before the model because the caller had gone (``cancelled``), skipped for the deadline
(``deadline_exceeded``), or computed for nobody (forwards that ran minus answers in time).

    python -m scripts.bench_cameras --serve artifacts/models --images ../shared/eval/images --cameras 1,2,4,8
    python -m scripts.bench_cameras --http http://127.0.0.1:8080 --images ../shared/eval/images --deadline-ms 100

``--deadline-ms`` also sends ``X-Request-Timeout-Ms`` (Frigate does not; a client that can, or
DETECTOR_DEEPSTACK_DEADLINE_MS on the service's side, gets what that column shows). Load goes to
127.0.0.1 only, bounded by ``--seconds`` per level.
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import requests
from PIL import Image

from harness.service_process import served
from harness.predictors import IMAGE_SUFFIXES

FRAME_SIDE = 320
ROUTE = "/v1/vision/detection"


def frames(folder: Path) -> list[bytes]:
    """Each photo's centre square at 320x320, encoded as Frigate encodes a region (JPEG, quality 75)."""
    encoded = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        with Image.open(path) as photo:
            photo = photo.convert("RGB")
            side = min(photo.size)
            left, top = (photo.width - side) // 2, (photo.height - side) // 2
            square = photo.crop((left, top, left + side, top + side)).resize((FRAME_SIDE, FRAME_SIDE))
        with io.BytesIO() as out:
            square.save(out, format="JPEG")
            encoded.append(out.getvalue())
    return encoded


def _metric(http_url: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{http_url}/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())


def _counts(http_url: str) -> dict[str, float]:
    return {
        "cancelled": _metric(http_url, "app_request_errors_total", transport="deepstack", code="cancelled"),
        "deadline": _metric(http_url, "app_request_errors_total", transport="deepstack", code="deadline_exceeded"),
        "forwards": _metric(http_url, "app_stage_duration_seconds_count", transport="deepstack", stage="inference"),
    }


def run_cameras(http_url: str, images: list[bytes], cameras: int, seconds: float, timeout: float,
                deadline_ms: int | None) -> dict:
    """``cameras`` threads posting frames back to back for ``seconds``; each frame's fate."""
    url = f"{http_url}{ROUTE}"
    headers = {"X-Request-Timeout-Ms": str(deadline_ms)} if deadline_ms else {}
    lock = threading.Lock()
    sent, in_time, late, failed, latencies = 0, 0, 0, 0, []
    stop_at = time.monotonic() + seconds

    def camera(offset: int) -> None:
        nonlocal sent, in_time, late, failed
        index = offset
        while time.monotonic() < stop_at:
            frame = images[index % len(images)]
            index += 1
            started = time.monotonic()
            try:
                answer = requests.post(url, data={"api_key": ""}, files={"image": frame}, headers=headers,
                                       timeout=timeout)
                outcome = "ok" if answer.status_code == 200 and answer.json().get("success") else "failed"
            except requests.exceptions.Timeout:
                outcome = "late"
            except requests.exceptions.RequestException:
                outcome = "failed"
            spent = time.monotonic() - started
            with lock:
                sent += 1
                if outcome == "ok" and spent <= timeout:
                    in_time += 1
                    latencies.append(spent)
                elif outcome == "late" or outcome == "ok":
                    late += 1
                else:
                    failed += 1

    before = _counts(http_url)
    threads = [threading.Thread(target=camera, args=(n * 5,)) for n in range(cameras)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(1.0)  # the last abandoned requests reach the model or are dropped
    after = _counts(http_url)
    delta = {key: after[key] - before[key] for key in after}
    return {
        "cameras": cameras, "sent": sent, "in_time": in_time, "late": late, "failed": failed,
        "in_time_share": in_time / sent if sent else 0.0, "in_time_fps": in_time / seconds,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else None,
        "dropped_cancelled": int(delta["cancelled"]), "skipped_deadline": int(delta["deadline"]),
        "forwards": int(delta["forwards"]), "forwards_for_nobody": int(max(delta["forwards"] - in_time, 0)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http", help="the service's HTTP base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--serve", type=Path, metavar="MODEL_DIR", help="start the service with this model for the run")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting for --serve")
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--cameras", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=20.0, help="per camera count (at most 60)")
    parser.add_argument("--timeout", type=float, default=0.1, help="the client's timeout (Frigate's api_timeout)")
    parser.add_argument("--deadline-ms", type=int, help="also send X-Request-Timeout-Ms")
    args = parser.parse_args(argv)
    args.seconds = min(args.seconds, 60.0)
    if args.serve:
        with served(args.serve, dict(item.split("=", 1) for item in args.env)) as service:
            return measure(service.http_url, args)
    if not args.http:
        parser.error("give --http or --serve")
    return measure(args.http, args)


def measure(http_url: str, args: argparse.Namespace) -> int:
    host = http_url.split("://")[-1].split(":")[0]
    if host not in ("127.0.0.1", "localhost"):
        raise SystemExit("benchmarks only send load to 127.0.0.1")
    images = frames(args.images)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"{cpu}; {len(images)} frames of {FRAME_SIDE}x{FRAME_SIDE}; client timeout {args.timeout * 1000:.0f} ms"
          + (f"; X-Request-Timeout-Ms {args.deadline_ms}" if args.deadline_ms else "") + f"; {args.seconds:.0f} s each")
    requests.post(f"{http_url}{ROUTE}", data={"api_key": ""}, files={"image": images[0]}, timeout=60)  # warm
    print(f"{'cameras':>7} {'sent':>6} {'in time':>8} {'share':>7} {'fps ok':>7} {'p50 ms':>7} "
          f"{'cancelled':>9} {'deadline':>8} {'forwards':>8} {'for nobody':>10}")
    for cameras in (int(c) for c in args.cameras.split(",")):
        row = run_cameras(http_url, images, cameras, args.seconds, args.timeout, args.deadline_ms)
        p50 = f"{row['p50_ms']:.0f}" if row["p50_ms"] is not None else "-"
        print(f"{row['cameras']:>7} {row['sent']:>6} {row['in_time']:>8} {row['in_time_share']:>7.1%} "
              f"{row['in_time_fps']:>7.1f} {p50:>7} {row['dropped_cancelled']:>9} {row['skipped_deadline']:>8} "
              f"{row['forwards']:>8} {row['forwards_for_nobody']:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
