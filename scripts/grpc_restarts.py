#!/usr/bin/env python3
"""Calls lost when one of two gRPC servers on a shared port restarts under load: with the drain, and without.

Two stub servers (``--stub``: the service's Predict signature, a 40 ms sleep
in place of the model) listen on one port with ``SO_REUSEPORT``, as ``grpc`` and
``grpc2`` do; four clients call back to back, each on one channel. The script
restarts the servers in turn, ``--restarts`` times, for each way of stopping:

- ``drain``: the service's own stop (``grpc_service.server.serve_until_signalled``:
  stop listening, let connections age out, then stop);
- ``plain``: ``server.stop(grace)`` straight away, the way before the drain.

Printed: the CPU, then per way the calls answered and the failed ones by status.
Only 127.0.0.1 is used.

    python -m scripts.grpc_restarts --restarts 80
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health

from grpc_service import drain
from grpc_service.server import STOP_GRACE_SECONDS, serve_until_signalled, wait_for_stop_signal
from common.settings import ServerSettings
from model.cpu import cpu_model
from proto import inference_pb2, inference_pb2_grpc
from harness.ports import free_port

STUB_SECONDS = 0.04
CLIENTS = 4
WAYS = ("plain", "drain")


class _StubDetector(inference_pb2_grpc.InstanceDetectorServicer):
    def Predict(self, request, context):  # noqa: N802 - the generated name
        time.sleep(STUB_SECONDS)
        return inference_pb2.InstanceDetectorOutput(objects=["dog"])


def serve_stub(port: int, way: str, max_age: float) -> None:
    """One stub server, stopped by SIGTERM the chosen way; prints ``up`` once it listens."""
    options = [("grpc.so_reuseport", 1)] + (drain.connection_options(max_age) if way == "drain" else [])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=options)
    inference_pb2_grpc.add_InstanceDetectorServicer_to_server(_StubDetector(), server)
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"could not bind 127.0.0.1:{port}")
    server.start()
    print("up", flush=True)
    if way == "drain":
        settings = ServerSettings(grpc_port=port, grpc_max_connection_age=max_age)
        serve_until_signalled(server, health.HealthServicer(), settings)
    else:
        wait_for_stop_signal()
        server.stop(grace=STOP_GRACE_SECONDS).wait()


@dataclass
class Outcome:
    answered: int = 0
    failed: collections.Counter = field(default_factory=collections.Counter)


def _start_stub(port: int, way: str, max_age: float) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.grpc_restarts", "--stub", way, "--port", str(port), "--max-age", str(max_age)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    if process.stdout is None or process.stdout.readline().strip() != "up":
        process.kill()
        raise RuntimeError("a stub server did not start")
    return process


def restarts_under_load(way: str, restarts: int, max_age: float, time_limit: float) -> Outcome:
    """Restart the two stub servers in turn ``restarts`` times (bounded by ``time_limit``) under the clients."""
    port = free_port()
    servers = [_start_stub(port, way, max_age), _start_stub(port, way, max_age)]
    outcome, lock, stop = Outcome(), threading.Lock(), threading.Event()

    def client() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = inference_pb2_grpc.InstanceDetectorStub(channel)
            while not stop.is_set():
                try:
                    stub.Predict(inference_pb2.InstanceDetectorInput(url="stub"), timeout=10)
                    with lock:
                        outcome.answered += 1
                except grpc.RpcError as failure:
                    with lock:
                        outcome.failed[f"{failure.code().name}: {failure.details()}"] += 1
                    time.sleep(0.05)

    clients = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    deadline = time.monotonic() + time_limit
    try:
        for thread in clients:
            thread.start()
        time.sleep(0.5)
        for turn in range(restarts):
            if time.monotonic() > deadline:
                break
            old = servers[turn % 2]
            old.terminate()
            old.wait(timeout=30)
            servers[turn % 2] = _start_stub(port, way, max_age)
            time.sleep(0.3)
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=15)
        for server in servers:
            server.kill()
            server.wait()
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--restarts", type=int, default=40, help="server restarts per way of stopping")
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS))
    parser.add_argument("--max-age", type=float, default=ServerSettings().grpc_max_connection_age,
                        help="connection age in seconds for the drain (the service's default)")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds per way at most")
    parser.add_argument("--stub", choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stub:
        serve_stub(args.port, args.stub, args.max_age)
        return 0
    print(f"CPU: {cpu_model()} ({os.cpu_count()} CPUs); {CLIENTS} clients back to back, "
          f"{args.restarts} restarts per way, connection age {args.max_age:g} s")
    for way in args.ways:
        started = time.monotonic()
        outcome = restarts_under_load(way, args.restarts, args.max_age, args.time_limit)
        failures = ", ".join(f"{count} {status}" for status, count in outcome.failed.most_common()) or "none"
        print(f"{way:6} answered {outcome.answered:6d}  failed {sum(outcome.failed.values()):3d} ({failures})  "
              f"in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
