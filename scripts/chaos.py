#!/usr/bin/env python3
"""Operate the service under steady load and check the promises of docs/operations.md.

Starts the real service (supervisord and every program) on free 127.0.0.1 ports,
runs two HTTP clients calling ``POST /predict`` (one opens a connection per call, the other keeps
its connection open across calls, as session-based clients do) and two gRPC clients calling
``inference.InstanceDetector/Predict`` back to back on one photo served from
127.0.0.1, and performs each operator action in turn: ``make reload``,
``supervisorctl restart`` of ``http``, ``grpc``, ``front`` and ``grpc-forkserver``, and ``kill -9`` of
each kind of process (a gRPC server, and a ``grpc`` program that stands in for one). For every action and transport it prints the requests
that ended from the action until the service was back to full capacity (plus
a short settle), how many failed, their p99 and the longest gap between two
answers. Then it stops the service as ``make stop`` does and looks for
survivors.

Exits non-zero when a promise is broken:
- a restart or reload fails a request;
- a ``kill -9`` fails more than 2 requests per transport, or the service is not
  back to full capacity (every program RUNNING, every model process warm, both
  transports answering) within 20 s of it ("back in" also shows, for restarts,
  how long the command itself took: it returns once the program is RUNNING);
- ``app_http_inference_count_total`` did not rise by one per /predict call that
  reached the app;
- a process of the service, or a listener on its ports, survives the stop.

Bounded: each action waits at most 60 s for capacity and the whole run at most
``--time-limit`` seconds; load goes only to 127.0.0.1.

    python -m scripts.chaos --serve artifacts/models --images ../shared/eval/images
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


from common import procfs
from model.cpu import cpu_model
from harness.predictors import percentile
from harness.image_server import ImageServer
from harness.service_process import ServiceProcess, listening, service_processes
from harness.steady_load import MAX_KILL_FAILURES, Call, SteadyLoad

REPO_ROOT = Path(__file__).resolve().parent.parent
PHOTO = "darknet_dog.jpg"
CAPACITY_SECONDS = 20.0
SETTLE_SECONDS = 2.0
ACTION_TIMEOUT_SECONDS = 60.0
REAP_TIMEOUT_SECONDS = 10.0


def summarise(calls: list[Call], start: float, end: float) -> dict:
    """Requests, failures, p99 and the longest wait for an answer (from the action's start) in a window."""
    answers = sorted([start] + [c.end for c in calls if c.ok] + [end])
    gap = max(b - a for a, b in zip(answers, answers[1:]))
    latencies = [c.end - c.start for c in calls]
    return {
        "requests": len(calls),
        "failed": sum(not c.ok for c in calls),
        "errors": sorted({c.error for c in calls if not c.ok}),
        "p99_ms": percentile(latencies, 99) * 1000 if latencies else float("nan"),
        "longest_gap_s": gap,
    }


@dataclass
class Action:
    name: str
    kind: str  # "restart": no request may fail; "kill": at most MAX_KILL_FAILURES per transport
    run: Callable[[], None]


def _kill(pid: int) -> None:
    """SIGKILL, then wait until the parent has reaped the process: until then supervisord still
    calls it RUNNING, and the service would look back at full capacity before it noticed the death."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + REAP_TIMEOUT_SECONDS
    while (procfs.PROC / str(pid)).exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def actions(service: ServiceProcess) -> list[Action]:
    def make_reload() -> None:
        subprocess.run(["make", "-s", "reload", f"RUN_DIR={service.run_dir}", f"VENV={sys.prefix}"],
                       cwd=REPO_ROOT, env=service.env, check=True, timeout=120, capture_output=True)

    def restart(program: str) -> Callable[[], None]:
        return lambda: _check_restarted(service.supervisorctl("restart", program), program)

    return [
        Action("make reload", "restart", make_reload),
        Action("supervisorctl restart http", "restart", restart("http")),
        Action("supervisorctl restart grpc", "restart", restart("grpc")),
        Action("supervisorctl restart front", "restart", restart("front")),
        Action("supervisorctl restart grpc-forkserver", "restart", restart("grpc-forkserver")),
        Action("kill -9 gunicorn worker", "kill", lambda: _kill(service.http_worker_pids()[0])),
        Action("kill -9 gunicorn master", "kill", lambda: _kill(service.program_pid("http"))),
        Action("kill -9 gRPC server", "kill", lambda: _kill(service.grpc_server_pid("grpc"))),
        Action("kill -9 gRPC program", "kill", lambda: _kill(service.program_pid("grpc2"))),
        Action("kill -9 nginx master", "kill", lambda: _kill(service.program_pid("front"))),
        Action("kill -9 listeners", "kill", lambda: _kill(service.program_pid("listeners"))),
    ]


def _check_restarted(output: str, program: str) -> None:
    if f"{program}: started" not in output:
        raise RuntimeError(f"supervisorctl restart {program}: {output.strip()}")


def full_capacity(service: ServiceProcess, load: SteadyLoad, since: float) -> bool:
    """Every program RUNNING, every model process warm, and both transports answering again."""
    status = service.supervisorctl("status").strip().splitlines()
    return (
        bool(status) and all(" RUNNING " in line for line in status)
        and service.processes_ready() >= service.model_processes
        and load.answered_after("http", since) and load.answered_after("grpc", since)
    )


def run(model_dir: Path, images: Path, time_limit: float, env: dict[str, str]) -> tuple[list[dict], list[str]]:
    problems: list[str] = []
    rows: list[dict] = []
    run_dir = Path(tempfile.mkdtemp(prefix="chaos-run-"))
    images_server = ImageServer(images)
    images_server.start()
    service = ServiceProcess(REPO_ROOT, model_dir, run_dir, env)
    deadline = time.monotonic() + time_limit
    try:
        service.start()
        # One HTTP client opens a connection per call (curl), one keeps its connection (a camera system's session).
        load = SteadyLoad(service.http_url, service.grpc_target, images_server.url(f"/images/{PHOTO}"),
                          http_clients=1, keep_alive_clients=1)
        counter_before = service.metric()
        load.start()
        time.sleep(SETTLE_SECONDS)
        for action in actions(service):
            if time.monotonic() > deadline:
                problems.append(f"time limit reached before {action.name}")
                break
            start = time.monotonic()
            action.run()
            while not full_capacity(service, load, start):
                if time.monotonic() - start > ACTION_TIMEOUT_SECONDS:
                    break
                time.sleep(0.25)
            back = time.monotonic() - start
            time.sleep(SETTLE_SECONDS)
            end = time.monotonic()
            for transport in ("http", "grpc"):
                row = {"action": action.name, "transport": transport, "back_s": back,
                       **summarise(load.window(transport, start, end), start, end)}
                rows.append(row)
                allowed = 0 if action.kind == "restart" else MAX_KILL_FAILURES
                if row["failed"] > allowed:
                    problems.append(f"{action.name}: {row['failed']} {transport} requests failed "
                                    f"(at most {allowed} allowed): {', '.join(row['errors'])}")
            if action.kind == "kill" and back > CAPACITY_SECONDS:
                problems.append(f"{action.name}: back to full capacity after {back:.1f} s (promise: {CAPACITY_SECONDS:.0f} s)")
        if died := load.stop():
            problems.append(f"{died} client(s) died during the run (see the traceback); the counts miss their calls")
        http_calls = [c for c in load.calls if c.transport == "http"]
        counted = service.metric() - counter_before
        answered = sum(c.ok for c in http_calls)
        if not answered <= counted <= len(http_calls):
            problems.append(f"app_http_inference_count_total rose by {counted:.0f} for {len(http_calls)} /predict calls "
                            f"of which {answered} were answered")
        session = service.supervisord_pid
        survivors_before = service_processes(run_dir, session)
        took = service.shutdown()
        time.sleep(0.5)
        survivors = service_processes(run_dir, session)
        if survivors:
            problems.append(f"processes survived the stop: {survivors}")
        for port in (service.http_port, service.grpc_port):
            if listening(port):
                problems.append(f"port {port} still accepts connections after the stop")
        print(f"stop: {len(survivors_before)} processes stopped in {took:.1f} s; survivors: {survivors or 'none'}")
    finally:
        service.stop()
        images_server.stop()
    return rows, problems


def print_table(rows: list[dict]) -> None:
    print(f"\n{'action':32} {'transport':9} {'requests':>8} {'failed':>6} {'p99 ms':>8} {'longest gap s':>13} {'back in s':>9}")
    for row in rows:
        print(f"{row['action']:32} {row['transport']:9} {row['requests']:8d} {row['failed']:6d} "
              f"{row['p99_ms']:8.0f} {row['longest_gap_s']:13.2f} {row['back_s']:9.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", type=Path, required=True, metavar="MODEL_DIR", help="the export to serve")
    parser.add_argument("--images", type=Path, required=True, help=f"a folder holding {PHOTO}")
    parser.add_argument("--time-limit", type=float, default=240.0, help="seconds for all the actions")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting for the service")
    parser.add_argument("--json", type=Path, help="write the rows and problems here")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    print(f"CPU: {cpu_model()} ({os.cpu_count()} CPUs); load: 2 HTTP + 2 gRPC clients back to back on {PHOTO}")
    rows, problems = run(args.serve, args.images, args.time_limit, env)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_model(), "rows": rows, "problems": problems}, indent=2))
    for problem in problems:
        print(f"BROKEN: {problem}")
    print("\nall promises kept" if not problems else f"\n{len(problems)} promise(s) broken")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
