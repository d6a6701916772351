"""Hand a stopping gRPC server's clients to the other server before any call can be cut.

Both gRPC programs listen on one port with ``SO_REUSEPORT``. ``server.stop()``
alone loses calls: grpcio's core cancels every call that reaches it after its
shutdown began (``CANCELLED``), and closes connections whose next call was
already on the wire (``UNAVAILABLE: Stream removed``), before clients have
read its GOAWAY. Restarting one of two servers in turn under four
back-to-back clients lost 7 calls that way in 160 restarts; with this drain,
none in 160 (docs/operations.md, "Restarts under load: the gRPC drain").

The drain runs before the stop, while the server still serves every call:

1. :func:`stop_listening` shuts down this process's listening sockets on the
   port, so the kernel hands new connections to the other server only. grpcio
   has no call for that, hence the socket-level shutdown; its core then logs
   ``Closing acceptor. Failed accept4: Invalid argument`` once, which is expected.
2. Connections already open leave when they reach their maximum age
   (``grpc.max_connection_age_ms``, see :func:`connection_options`): the server
   sends a graceful GOAWAY, calls on the way still complete, and the client
   reconnects, now to the other server. :func:`wait_for_clients` returns once
   none is left.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Iterator

log = logging.getLogger(__name__)

# grpc core spreads each connection's maximum age by up to 10 % either way.
AGE_JITTER = 1.1
# Beyond the age: the GOAWAY's ping round trip and the client's close.
CLOSE_MARGIN_SECONDS = 1.0
# How long a call on an aged connection may still run; a Predict ends well within it (its fetch deadline).
CALL_GRACE_SECONDS = 120
_POLL_SECONDS = 0.05


def connection_options(max_age_seconds: float) -> list[tuple[str, int]]:
    """Server options that age connections out, so a drain needs no cooperation from clients.

    The same ageing spreads long-lived client channels over both servers in normal
    running: each reconnect lands on whichever server the kernel picks.
    """
    return [
        ("grpc.max_connection_age_ms", max(1, round(max_age_seconds * 1000))),
        ("grpc.max_connection_age_grace_ms", CALL_GRACE_SECONDS * 1000),
    ]


def _tcp_sockets(port: int) -> Iterator[socket.socket]:
    """Duplicates of this process's TCP sockets whose local port is ``port`` (closed after each step)."""
    fd_dir = "/proc/self/fd"
    for name in os.listdir(fd_dir):
        try:
            if not os.readlink(f"{fd_dir}/{name}").startswith("socket:"):
                continue
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue  # closed since the listing
        with sock:
            try:
                if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.getsockname()[1] == port:
                    yield sock
            except OSError:
                continue


def _listening(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))


def stop_listening(port: int) -> int:
    """Stop accepting connections on ``port`` in this process; returns how many listeners were shut.

    The socket leaves the ``SO_REUSEPORT`` group, so the other server gets every new
    connection; connections already open are untouched.
    """
    shut = 0
    for sock in _tcp_sockets(port):
        if _listening(sock):
            sock.shutdown(socket.SHUT_RD)
            shut += 1
    return shut


def _connected(sock: socket.socket) -> bool:
    """A connection, as opposed to a listener (one shut by :func:`stop_listening` no longer listens)."""
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def open_connections(port: int) -> int:
    """Client connections this process still holds on ``port``."""
    return sum(_connected(sock) for sock in _tcp_sockets(port))


def wait_for_clients(port: int, max_age_seconds: float) -> int:
    """Wait until every connection on ``port`` has aged out and closed, or could have; returns those left."""
    deadline = time.monotonic() + max_age_seconds * AGE_JITTER + CLOSE_MARGIN_SECONDS
    while (left := open_connections(port)) and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)
    return left


def drain(port: int, max_age_seconds: float) -> None:
    """:func:`stop_listening`, then :func:`wait_for_clients`; logged for the operator."""
    started = time.monotonic()
    shut = stop_listening(port)
    log.info("draining: stopped listening on port %d (%d socket(s)); %d client connection(s) to hand over",
             port, shut, open_connections(port))
    left = wait_for_clients(port, max_age_seconds)
    log.info("drained in %.1fs; %d connection(s) left", time.monotonic() - started, left)
