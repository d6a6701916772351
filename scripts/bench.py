#!/usr/bin/env python3
"""Latency and throughput of a running service over HTTP and gRPC, plus a naive baseline.

Drives the service from 127.0.0.1 with the images of one folder (served by a
local HTTP server started here) at several concurrency levels. Every level is
bounded by a request count and a time limit. Prints p50/p95/p99 latency,
throughput and errors per transport and level, the service's peak RSS (from
/proc, via supervisord's pid file), and writes the same numbers as JSON.

``--serve MODEL_DIR`` starts the real service (supervisord, gunicorn, the gRPC
server) on free 127.0.0.1 ports for the run and stops it after, with
``--env NAME=VALUE`` settings (e.g. ``DETECTOR_PRECISION=fp32``).

``--grpc-channels 1,4`` measures gRPC twice: over one channel, as most clients call, and over four
connections, each client thread keeping to one (docs/api.md): a connection reaches one of the two
gRPC servers, so one channel leaves the other idle.

``--mixed C`` then loads both transports at once, C clients each: the HTTP
worker and the gRPC servers share the machine's cores, as under real traffic.

``--protocols`` measures ``/v1/detect`` and the inference protocol (``/v2/.../infer``, gRPC
``ModelInfer``) instead, the same image URLs through each, to compare what each protocol costs.
With ``--rounds R`` the protocols take turns: R short rounds per concurrency, the order rotated
each round, so the machine's drift (turbo, a neighbour's load) falls on all of them alike; each
round's throughput is divided by ``/v1``'s in the same round, and the median ratio is printed.

``--baseline`` also measures, in this process and in the same run, the naive
way to answer: eager torchvision Mask R-CNN with its mask branch, default
torch threading, one image at a time. Mask R-CNN's COCO weights are used if
torchvision can download them, otherwise random init (the same computation).

    python -m scripts.bench --http http://127.0.0.1:8080 --grpc 127.0.0.1:9090 \\
        --images ../shared/eval/images --baseline --json bench-results/run.json
    python -m scripts.bench --serve artifacts/models --images ../shared/eval/images --baseline
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from common import procfs
from harness.image_server import serve_folder
from harness.predictors import (IMAGE_SUFFIXES, Predict, grpc_predictor, http_predictor, percentile, v1_predictor,
                                v2_grpc_predictor, v2_http_predictor)
from harness.service_process import served

def summarise(latencies: list[float], errors: int, wall: float) -> dict[str, float]:
    return {
        "requests": len(latencies) + errors,
        "errors": errors,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "mean_ms": (statistics.fmean(latencies) * 1000) if latencies else float("nan"),
        "throughput_rps": len(latencies) / wall if wall > 0 else 0.0,
    }


def run_level(predict: Predict, urls: list[str], concurrency: int, count: int, time_limit: float) -> dict:
    """Send ``count`` requests (cycling over ``urls``) from ``concurrency`` threads, stop at ``time_limit``."""
    deadline = time.monotonic() + time_limit
    latencies: list[float] = []
    errors = 0

    def one(index: int) -> float | None:
        if time.monotonic() > deadline:
            return None
        started = time.perf_counter()
        predict(urls[index % len(urls)])
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(one, i) for i in range(count)]:
            try:
                result = future.result()
            except Exception:  # noqa: BLE001 - any failed request is an error in the count
                errors += 1
                continue
            if result is not None:
                latencies.append(result)
    return summarise(latencies, errors, time.perf_counter() - started)


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _pss_kb(pid: int) -> int:
    return procfs.smaps_rollup(pid).get("Pss", 0)


def service_memory(run_dir: Path) -> dict[str, float] | None:
    """Memory of supervisord's process tree in MiB.

    RSS sums count pages shared between processes (libraries, and what
    gunicorn workers inherit from the master) once per process; PSS splits
    shared pages between their users, so its sum is the real footprint.
    """
    pid_file = run_dir / "supervisord.pid"
    if not pid_file.exists():
        return None
    tree, todo = [], [int(pid_file.read_text().strip())]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(procfs.children(pid))
    peak = sum(_status_kb(pid, "VmHWM") for pid in tree) / 1024
    current = sum(_status_kb(pid, "VmRSS") for pid in tree) / 1024
    pss = sum(_pss_kb(pid) for pid in tree) / 1024
    return {"processes": len(tree), "peak_rss_mib_sum": peak, "rss_mib_sum": current, "pss_mib_sum": pss}


def served_model(http_url: str) -> str:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{http_url.rstrip('/')}/metrics", timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "app_model_info":
            return ",".join(sorted({s.labels["model"] for s in family.samples}))
    return "unknown"


def naive_baseline(images: list[Path], count: int, time_limit: float) -> dict:
    """Eager Mask R-CNN with masks, default threads, sequential, including decode per image."""
    import torch
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    from exporters import maskrcnn

    try:
        model, weights = maskrcnn.build_eager("pretrained"), "COCO_V1"
    except Exception:  # noqa: BLE001 - no network: same computation with random weights
        model, weights = maskrcnn.build_eager("random"), "random-init"
    deadline = time.monotonic() + time_limit
    latencies = []
    started = time.perf_counter()
    with torch.no_grad():
        for index in range(count):
            if time.monotonic() > deadline:
                break
            begin = time.perf_counter()
            image = Image.open(images[index % len(images)]).convert("RGB")
            model([pil_to_tensor(image).float() / 255.0])
            latencies.append(time.perf_counter() - begin)
    result = summarise(latencies, 0, time.perf_counter() - started)
    result.update(
        weights=weights, torch_threads=torch.get_num_threads(),
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    return result


def print_row(label: str, concurrency: int | str, stats: dict) -> None:
    print(
        f"{label:9} c={concurrency!s:<3} n={stats['requests']:<4} err={stats['errors']:<3} "
        f"p50={stats['p50_ms']:8.1f}ms p95={stats['p95_ms']:8.1f}ms p99={stats['p99_ms']:8.1f}ms "
        f"thr={stats['throughput_rps']:6.2f}/s"
    )


def run_mixed(predictors: dict[str, Predict], urls: list[str], concurrency: int, count: int,
              time_limit: float) -> dict[str, dict]:
    """Every transport at once, ``concurrency`` clients each: the service's processes share the cores."""
    with ThreadPoolExecutor(max_workers=len(predictors)) as pool:
        futures = {name: pool.submit(run_level, predict, urls, concurrency, count, time_limit)
                   for name, predict in predictors.items()}
        return {name: future.result() for name, future in futures.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http", help="HTTP base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--grpc", help="gRPC target, e.g. 127.0.0.1:9090")
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--requests", type=int, default=24, help="requests per transport and level")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per transport and level")
    parser.add_argument("--run-dir", type=Path, default=Path(os.environ.get("DETECTOR_RUN_DIR", "run")))
    parser.add_argument("--grpc-channels", default="1", metavar="N[,N...]",
                        help="gRPC over one channel (1, as most clients) or N, each client thread keeping to one "
                             "(rows grpc/Nch): a connection reaches one of the two gRPC servers")
    parser.add_argument("--mixed", type=int, default=0, metavar="C",
                        help="then both transports at once, C clients each (--requests each)")
    parser.add_argument("--baseline", action="store_true", help="also measure the naive eager Mask R-CNN")
    parser.add_argument("--protocols", action="store_true",
                        help="/v1/detect, /v2 REST and gRPC ModelInfer instead of /predict and Predict")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with --protocols: interleave them in this many rounds (--requests split between)")
    parser.add_argument("--serve", type=Path, metavar="MODEL_DIR", help="start the service with this model for the run")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting for --serve")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.serve:
        with served(args.serve, dict(item.split("=", 1) for item in args.env)) as service:
            args.http, args.grpc, args.run_dir = service.http_url, service.grpc_target, service.run_dir
            return measure(args, parser)
    return measure(args, parser)


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    for url in (args.http or "", args.grpc or ""):
        host = url.split("://")[-1].split(":")[0]
        if host and host not in ("127.0.0.1", "localhost"):
            parser.error("benchmarks only send load to 127.0.0.1")
    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    model = served_model(args.http) if args.http else "unknown"
    transports: dict[str, Callable[[], Predict]] = {}
    if args.http:
        transports["http"] = lambda: http_predictor(args.http)
    if args.grpc:
        for channels in map(int, args.grpc_channels.split(",")):
            transports["grpc" if channels == 1 else f"grpc/{channels}ch"] = (
                lambda channels=channels: grpc_predictor(args.grpc, channels))
    if args.protocols:
        if not (args.http and args.grpc):
            parser.error("--protocols needs both --http and --grpc (or --serve)")
        transports = {"v1": lambda: v1_predictor(args.http), "v2-http": lambda: v2_http_predictor(args.http, model),
                      "v2-grpc": lambda: v2_grpc_predictor(args.grpc, model)}
    report: dict = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "model": model,
        "images": [p.name for p in images],
        "results": [],
    }
    print(f"model {report['model']}, {len(images)} images, {args.requests} requests per level")
    with serve_folder(args.images) as base:
        urls = [f"{base}/{p.name}" for p in images]
        if args.protocols and args.rounds > 1:
            report["paired"] = run_paired(transports, urls, args)
            _write(args.json, report)
            return 0
        predictors: dict[str, Predict] = {}
        for transport, factory in transports.items():
            predict = predictors[transport] = factory()
            predict(urls[0])  # connection set-up is not part of the numbers
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                stats = run_level(predict, urls, concurrency, args.requests, args.time_limit)
                report["results"].append({"transport": transport, "concurrency": concurrency, **stats})
                print_row(transport, concurrency, stats)
        if args.mixed and len(predictors) > 1:
            mixed = run_mixed(predictors, urls, args.mixed, args.requests, args.time_limit)
            for transport, stats in mixed.items():
                report["results"].append({"transport": transport, "concurrency": args.mixed, "mixed": True, **stats})
                print_row(f"{transport}+", args.mixed, stats)
            print(f"mixed: {sum(s['throughput_rps'] for s in mixed.values()):.2f} requests/s in all "
                  f"({args.mixed} clients per transport, all at once)")
    report["service_memory"] = service_memory(args.run_dir)
    if report["service_memory"]:
        memory = report["service_memory"]
        print(f"service: {memory['processes']} processes, peak RSS sum {memory['peak_rss_mib_sum']:.0f} MiB, "
              f"RSS sum {memory['rss_mib_sum']:.0f} MiB, PSS sum (real footprint) {memory['pss_mib_sum']:.0f} MiB")
    if args.baseline:
        report["baseline"] = naive_baseline(images, min(args.requests, 12), args.time_limit)
        print_row("baseline", 1, report["baseline"])
        print(f"baseline: eager Mask R-CNN ({report['baseline']['weights']}) with masks, "
              f"{report['baseline']['torch_threads']} threads, peak RSS {report['baseline']['peak_rss_mib']:.0f} MiB")
    _write(args.json, report)
    return 0


def _write(path: Path | None, report: dict) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2))


def run_paired(transports: dict[str, Callable[[], Predict]], urls: list[str], args: argparse.Namespace) -> list[dict]:
    """The transports in turns, ``args.rounds`` rounds per concurrency, the order rotated each round;
    per transport, the median throughput and the median of its per-round ratio to the first one's."""
    predictors = {name: factory() for name, factory in transports.items()}
    for predict in predictors.values():
        predict(urls[0])  # connection set-up is not part of the numbers
    names = list(predictors)
    per_round = max(args.requests // args.rounds, 1)
    results = []
    for concurrency in (int(c) for c in args.concurrency.split(",")):
        rounds: list[dict[str, float]] = []
        for number in range(args.rounds):
            order = names[number % len(names):] + names[:number % len(names)]
            rounds.append({name: run_level(predictors[name], urls, concurrency, per_round,
                                           args.time_limit)["throughput_rps"] for name in order})
        reference = names[0]
        for name in names:
            ratios = [r[name] / r[reference] for r in rounds if r[reference] > 0]
            row = {"transport": name, "concurrency": concurrency, "rounds": args.rounds,
                   "requests_per_round": per_round, "median_rps": statistics.median(r[name] for r in rounds),
                   f"median_ratio_to_{reference}": statistics.median(ratios),
                   "ratio_range": [min(ratios), max(ratios)]}
            results.append(row)
            print(f"{name:9} c={concurrency:<3} {args.rounds} rounds x {per_round}: median {row['median_rps']:6.2f}/s, "
                  f"ratio to {reference} median {row[f'median_ratio_to_{reference}']:.3f} "
                  f"(rounds {min(ratios):.3f}-{max(ratios):.3f})")
    return results


if __name__ == "__main__":
    sys.exit(main())
