"""Listening sockets that outlive the processes serving them (supervisord's ``listeners`` program).

``supervisorctl restart front`` or ``restart http`` stops a process and starts a
new one. If that process owned its listening socket, connections arriving in
between were refused (nginx answered 502 for gunicorn's socket; clients got
ECONNREFUSED on the public port). This process owns both sockets instead: the
public TCP port that nginx (``front``) serves and the Unix socket gunicorn
(``http``) serves behind it. Each of those programs asks for its socket at start
(:func:`exec_with_listener`) and serves a duplicate, so while it restarts,
connections wait in the kernel's backlog and the next process accepts them.

It starts first and stops last (supervisord's priority). Should it be killed,
nginx and gunicorn keep serving their duplicates; its successor binds again as
soon as the old ones close (:func:`_bind_when_free`), so only the next restart
of ``front`` or ``http`` sees a gap as long as the old process's close.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from common.settings import ServerSettings
from common.logs import configure_logging

log = logging.getLogger("http_service.listeners")

# Connections the kernel queues for a restarting server: a few seconds of any sane load.
BACKLOG = 4096
# How long a program waits for its socket: the holder starts first, but in the same second.
RECEIVE_TIMEOUT_SECONDS = 30.0
_POLL_SECONDS = 0.2


def control_path(server: ServerSettings) -> Path:
    return server.run_dir / "listeners.sock"


def _tcp(server: ServerSettings) -> socket.socket:
    family = socket.AF_INET6 if ":" in server.http_host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((server.http_host, server.http_port))
    sock.listen(BACKLOG)
    return sock


def _unix_in_use(path: Path) -> bool:
    """Someone accepts on ``path``: a gunicorn of an earlier holder still serves it."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _unix(path: Path) -> socket.socket:
    if _unix_in_use(path):
        raise OSError(errno.EADDRINUSE, f"{path} is served by another process")
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o600)
    sock.listen(BACKLOG)
    return sock


def _bind_when_free(name: str, bind: Callable[[], socket.socket], stop: threading.Event) -> socket.socket | None:
    """Bind now, or as soon as a previous holder's servers let go of the address (after a crash)."""
    warned = False
    while not stop.is_set():
        try:
            return bind()
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            if not warned:
                log.warning("%s: address in use by servers of an earlier holder; binding once they close it", name)
                warned = True
        stop.wait(_POLL_SECONDS)
    return None


class Holder:
    """Owns the sockets by name and hands a duplicate to whoever asks on the control socket."""

    def __init__(self, server: ServerSettings) -> None:
        self.server = server
        self.stop = threading.Event()
        self.sockets: dict[str, socket.socket] = {}
        self.failed = False
        self._binders = {
            "front": lambda: _tcp(server),
            "http": lambda: _unix(server.http_socket),
        }
        self._ready = {name: threading.Event() for name in self._binders}

    def _acquire(self, name: str) -> None:
        try:
            sock = _bind_when_free(name, self._binders[name], self.stop)
        except OSError as error:
            # Not "in use" but impossible (a privileged port, a bad host): exit, so supervisord says so.
            log.critical("cannot bind the %s socket: %s", name, error)
            self.failed = True
            self.stop.set()
            return
        if sock is not None:
            self.sockets[name] = sock
            self._ready[name].set()
            log.info("holding the %s socket (%s)", name, sock.getsockname())

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(RECEIVE_TIMEOUT_SECONDS)
            try:
                name = conn.recv(64).decode("ascii", "replace").strip()
                if name not in self._ready or not self._ready[name].wait(RECEIVE_TIMEOUT_SECONDS):
                    conn.sendall(b"-")
                    return
                socket.send_fds(conn, [b"+"], [self.sockets[name].fileno()])
            except OSError as error:
                log.warning("could not hand over a socket: %s", error)

    def serve(self) -> None:
        path = control_path(self.server)
        path.unlink(missing_ok=True)
        control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        control.bind(str(path))
        os.chmod(path, 0o600)
        control.listen(64)
        control.settimeout(_POLL_SECONDS)
        for name in self._binders:
            threading.Thread(target=self._acquire, args=(name,), daemon=True).start()
        while not self.stop.is_set():
            try:
                conn, _ = control.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()
        control.close()
        path.unlink(missing_ok=True)
        for sock in self.sockets.values():
            sock.close()
        self.server.http_socket.unlink(missing_ok=True)
        log.info("listening sockets closed")


def receive(name: str, server: ServerSettings) -> socket.socket:
    """The holder's socket ``name`` ("front" or "http"), waiting for the holder to have it."""
    deadline = time.monotonic() + RECEIVE_TIMEOUT_SECONDS
    while True:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(RECEIVE_TIMEOUT_SECONDS)
                conn.connect(str(control_path(server)))
                conn.sendall(name.encode("ascii"))
                message, fds, _, _ = socket.recv_fds(conn, 1, 1)
            if message == b"+" and fds:
                return socket.socket(fileno=fds[0])
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the listeners program did not hand over the {name} socket "
                             f"within {RECEIVE_TIMEOUT_SECONDS:.0f} s (is it running?)")
        time.sleep(_POLL_SECONDS)


def exec_with_listener(name: str, argv: list[str], env: dict[str, str], fd: int | None = None) -> None:
    """Become ``argv`` with the held socket ``name`` inherited (at ``fd`` when given).

    ``env`` may use the placeholder ``{fd}`` in its values, replaced by the
    socket's descriptor number (nginx's ``NGINX="{fd};"``).
    """
    sock = receive(name, ServerSettings.from_env())
    number = sock.detach()
    if fd is not None and number != fd:
        os.dup2(number, fd)
        os.close(number)
        number = fd
    os.set_inheritable(number, True)
    os.execve(argv[0], argv, {**os.environ, **{k: v.format(fd=number) for k, v in env.items()}})


def main() -> None:
    configure_logging()
    holder = Holder(ServerSettings.from_env())
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: holder.stop.set())
    holder.serve()
    sys.exit(1 if holder.failed else 0)


if __name__ == "__main__":
    main()
