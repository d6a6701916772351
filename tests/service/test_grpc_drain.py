"""A stopping gRPC server hands its clients over before it stops (grpc_service/drain.py).

The drain's pieces run against a real grpcio server in this process; the whole
stop, as the service runs it, against two stub server processes restarted in turn
under load (scripts/grpc_restarts.py), where a plain ``server.stop()`` loses calls.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from grpc_service import drain
from common.settings import ServerSettings
from tests.conftest import REPO_ROOT
from harness.ports import free_port

MAX_AGE = 0.5


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def health_server():
    port = free_port()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         options=[("grpc.so_reuseport", 1), *drain.connection_options(MAX_AGE)])
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    assert server.add_insecure_port(f"127.0.0.1:{port}") == port
    server.start()
    yield port
    server.stop(grace=None)


def _check(channel: grpc.Channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status


def test_the_drain_refuses_new_connections_serves_open_ones_and_waits_for_them_to_age_out(health_server):
    port = health_server
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert _check(channel) == health_pb2.HealthCheckResponse.SERVING
        assert drain.open_connections(port) == 1
        assert drain.stop_listening(port) == 1
        assert _refused(port), "a new connection still reached the stopping server"
        assert _check(channel) == health_pb2.HealthCheckResponse.SERVING, "the open connection stopped serving"
        started = time.monotonic()
        assert drain.wait_for_clients(port, MAX_AGE) == 0
        assert time.monotonic() - started <= MAX_AGE * drain.AGE_JITTER + drain.CLOSE_MARGIN_SECONDS + 0.5
    assert drain.stop_listening(port) == 0


def test_an_idle_server_drains_at_once(health_server):
    started = time.monotonic()
    drain.drain(health_server, max_age_seconds=30)
    assert time.monotonic() - started < 2
    assert _refused(health_server)


def test_restarting_servers_in_turn_under_load_fails_no_call():
    """The service's stop, in stub servers sharing a port: every restart hands its clients over."""
    result = subprocess.run(
        [sys.executable, "-m", "scripts.grpc_restarts", "--ways", "drain", "--restarts", "8",
         "--max-age", str(MAX_AGE), "--time-limit", "120"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = re.search(r"^drain\s+answered\s+(\d+)\s+failed\s+(\d+)(.*)$", result.stdout, re.MULTILINE)
    assert line is not None, result.stdout
    assert int(line[1]) > 100 and int(line[2]) == 0, line[0]


def test_the_connection_age_is_bounded_so_the_stop_fits_supervisords_wait():
    assert ServerSettings.from_env({}).grpc_max_connection_age == 3.0
    assert ServerSettings.from_env({"DETECTOR_GRPC_MAX_CONNECTION_AGE_SECONDS": "0.5"}).grpc_max_connection_age == 0.5
    for bad in ("0", "9", "3600"):
        with pytest.raises(ValueError, match="DETECTOR_GRPC_MAX_CONNECTION_AGE_SECONDS must be a number from 0.1 to 8 s"):
            ServerSettings.from_env({"DETECTOR_GRPC_MAX_CONNECTION_AGE_SECONDS": bad})
