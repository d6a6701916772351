"""Connections that never finish their request: three in four drip headers, one in four a body."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Iterator

_HEADERS = b"POST /predict HTTP/1.1\r\nHost: x\r\n"
_BODY = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"


@contextlib.contextmanager
def dripping_connections(port: int, count: int, interval: float = 0.5) -> Iterator[None]:
    """Open ``count`` connections to 127.0.0.1:``port``, each sending one more byte every ``interval`` s."""
    socks: list[socket.socket] = []
    stop = threading.Event()

    def drip() -> None:
        while not stop.wait(interval):
            for sock in socks:
                try:
                    sock.send(b"a")
                except OSError:
                    pass

    try:
        for index in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(_BODY if index % 4 == 0 else _HEADERS)
            socks.append(sock)
        threading.Thread(target=drip, daemon=True).start()
        yield
    finally:
        stop.set()
        for sock in socks:
            sock.close()
