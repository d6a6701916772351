"""Free TCP ports on 127.0.0.1 for the processes the tests and benchmarks start."""

from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """``count`` distinct free 127.0.0.1 ports.

    Every probe stays bound until all are chosen: probes closed one by one may be handed the same
    port again, and two servers of one run would then collide.
    """
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def free_port() -> int:
    """One free 127.0.0.1 port."""
    return free_ports(1)[0]
