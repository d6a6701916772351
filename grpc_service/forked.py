"""A gRPC program's side of :mod:`grpc_service.forkserver`: have the server forked there, stand in for it.

The program stays what supervisord started and stops: it relays every signal an operator or
supervisord sends to the forked server, and exits with the server's status, so ``supervisorctl``,
``startsecs``/``startretries`` (a model that cannot load exits with status 3) and ``autorestart``
see the server as if it were the program. It keeps one end of the server's lifeline, so a program
killed outright takes its server with it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

from grpc_service.forkserver import MESSAGE_BYTES

RELAYED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def serve_forked(path: Path, wait: float = 0.0) -> int | None:
    """The forked server's exit status once it has exited; ``None`` if no fork server takes the request.

    supervisord starts the fork server and the gRPC programs together, so a program waits up to
    ``wait`` seconds for the socket to take connections. Without it by then, or when the fork server
    refuses (another interpreter or environment) or dies before answering, the caller serves in its
    own process.
    """
    deadline = time.monotonic() + wait
    while True:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            connection.connect(str(path))
            break
        except OSError:
            connection.close()
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)
    lifeline_read, lifeline_write = os.pipe()  # the write end stays open, unused, for this process's life
    status_read, status_write = os.pipe()
    request = {"executable": sys.executable, "env": dict(os.environ), "cwd": os.getcwd(), "pid": os.getpid()}
    with connection:
        try:
            socket.send_fds(connection, [json.dumps(request).encode()], [1, 2, lifeline_read, status_write])
            answer = json.loads(connection.recv(MESSAGE_BYTES) or b"{}")
        except (OSError, ValueError):
            answer = {}
        finally:
            os.close(lifeline_read)
            os.close(status_write)
    if "pid" not in answer:
        print(f"grpc_service: serving in this process; the fork server at {path} "
              f"{'refused: ' + answer['refused'] if 'refused' in answer else 'did not answer'}", file=sys.stderr, flush=True)
        os.close(lifeline_write)
        os.close(status_read)
        return None
    pid = int(answer["pid"])
    try:  # a pidfd names this server even after its pid is freed and reused
        server = os.pidfd_open(pid)
    except OSError:
        server = None
    for number in RELAYED_SIGNALS:
        signal.signal(number, lambda received, _: _relay(pid, server, received))
    status = b""
    while chunk := os.read(status_read, 16):
        status += chunk
    if not status:
        print(f"grpc_service: the forked server {pid} ended without a status", file=sys.stderr, flush=True)
        return 1
    return status[-1]  # the fork server's, from the wait status, if it wrote one after the server's own


def _relay(pid: int, server: int | None, number: int) -> None:
    try:
        if server is None:
            os.kill(pid, number)
        else:
            signal.pidfd_send_signal(server, number)
    except ProcessLookupError:
        pass  # it has exited: its status is on its way


def serve_in_child() -> None:
    """In the forked server: drop what a dead process with this pid left in the metrics, then serve."""
    from common.metrics_dir import forget_dead_processes

    forget_dead_processes(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    from grpc_service.server import main

    main()
