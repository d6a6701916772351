"""Fetch a caller-supplied image URL without opening a way into the service's network.

A detection service that fetches any URL is a server-side request forgery
tool unless it refuses internal addresses. The checks here:

* only ``http``/``https``, no credentials in the URL;
* the host is resolved once, every address is checked, and the connection goes
  to the checked address (Host header and TLS SNI/verification keep the name),
  so a DNS answer that changes between check and connect cannot slip through;
* redirects are followed by hand, each hop checked the same way, at most N;
* connect/read timeouts plus an overall deadline that holds whatever the
  upstream does (a watchdog shuts the fetch's sockets down when it passes, so
  headers or a body sent a byte at a time cannot stretch it; name resolution
  runs on a small pool and is abandoned at the deadline), and a byte cap on
  the body that stops reading as soon as it is exceeded.

Private addresses are allowed only when listed in ``DETECTOR_URL_ALLOWLIST``.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import urllib3
import urllib3.connection
from urllib3.exceptions import HTTPError, LocationParseError, NewConnectionError, ProtocolError
from urllib3.exceptions import ConnectTimeoutError, ReadTimeoutError, SSLError

from common.settings import FetchPolicy
from common.errors import AddressNotAllowed, ImageTooLarge, InvalidURL, UpstreamError, UpstreamRejected, UpstreamTimeout

log = logging.getLogger(__name__)


def _resolver() -> ThreadPoolExecutor:
    """The small pool name lookups run on (resolve_checked); a forked child makes its own."""
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="resolve")


_RESOLVER = _resolver()
# The watchdog of the fetch running in this context; connections register their sockets with it.
_WATCHDOG: ContextVar["_Watchdog | None"] = ContextVar("fetch_watchdog", default=None)


class _Watchdog:
    """Shuts down every socket of one fetch when its deadline passes, whatever the upstream is doing.

    Read timeouts apply per read: a server that sends its headers or body a byte at a time
    never trips them. Shutting the socket down makes the blocked read return at once.
    """

    def __init__(self, due: float):
        """``due``: the fetch's deadline, ``time.monotonic()`` time."""
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.expired = False
        self.finished = False
        self.due = due

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shutdown(sock)

    def expire(self) -> None:
        with self._lock:
            if self.finished:
                return
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def __enter__(self) -> "_Watchdog":
        self._token = _WATCHDOG.set(self)
        _DEADLINES.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.finished = True
            self._sockets.clear()  # the entry waits in _DEADLINES until its due time: it must not keep sockets open
        _WATCHDOG.reset(self._token)


class _Deadlines:
    """One daemon thread per process expires the watchdogs of every fetch as their deadlines pass.

    A timer thread per fetch cost about 150 us a request on an idle CPU, and 2 to 3 ms on a busy
    one: starting a thread waits until the new thread has been scheduled. A finished
    fetch's entry is dropped when it reaches the front; entries are bounded by the fetch rate
    times the fetch deadline. The thread starts with the first fetch, so a forking parent that
    never fetched (gunicorn's master, the gRPC fork server) hands its children no thread, and a
    child forked after a fetch starts its own.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._due: list[tuple[float, int, _Watchdog]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, watchdog: _Watchdog) -> None:
        with self._changed:
            heapq.heappush(self._due, (watchdog.due, next(self._order), watchdog))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fetch-deadlines", daemon=True)
                self._thread.start()
            elif self._due[0][2] is watchdog:
                self._changed.notify()

    def _run(self) -> None:
        while True:
            self._next_expired().expire()

    def _next_expired(self) -> _Watchdog:
        """Wait until the earliest deadline of a fetch still running passes; that fetch's watchdog."""
        with self._changed:
            while True:
                while self._due and self._due[0][2].finished:
                    heapq.heappop(self._due)
                if self._due and self._due[0][0] <= time.monotonic():
                    return heapq.heappop(self._due)[2]
                self._changed.wait(self._due[0][0] - time.monotonic() if self._due else None)


_DEADLINES = _Deadlines()


def _after_fork_in_child() -> None:
    """A forked child has none of its parent's threads: its deadline thread and resolver pool start
    afresh (the parent's pool counts its idle threads, and would never start one in the child)."""
    global _DEADLINES, _RESOLVER
    _DEADLINES = _Deadlines()
    _RESOLVER = _resolver()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Watched:
    """Mixed into urllib3's connections: a new socket is handed to the fetch's watchdog."""

    sock: socket.socket | None

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        watchdog = _WATCHDOG.get()
        if watchdog is not None and self.sock is not None:
            watchdog.watch(self.sock)


class _WatchedHTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _Pool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _TLSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection

_REDIRECTS = {301, 302, 303, 307, 308}
_CHUNK = 64 * 1024
_USER_AGENT = "instance-detector/1.0"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class FetchedImage:
    data: bytes
    content_type: str
    url: str


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str
    host_header: str


def parse_url(url: str) -> _Target:
    """Validate the URL's form; raises InvalidURL with the reason."""
    if not url or len(url) > 4096:
        raise InvalidURL("url must be a non-empty string of at most 4096 characters")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in url):
        # A NUL ends the host name for the resolver but not for the Host header sent upstream.
        raise InvalidURL("url contains control characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"malformed url: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidURL("only http and https URLs are supported")
    if not parts.hostname:
        raise InvalidURL("url has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidURL("credentials in the url are not allowed")
    host = parts.hostname
    port = port or (443 if scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    default_port = port == (443 if scheme == "https" else 80)
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if default_port else f"{shown}:{port}"
    return _Target(scheme, host, port, path, host_header)


class Allowlist:
    """Hosts and networks an operator explicitly allows even though they are not public."""

    def __init__(self, entries: tuple[str, ...]):
        self._hosts: set[str] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self._hosts.add(entry.lower().rstrip("."))

    def allows(self, host: str, address: IPAddress) -> bool:
        if host.lower().rstrip(".") in self._hosts:
            return True
        return any(address.version == net.version and address in net for net in self._networks)


def is_public(address: IPAddress) -> bool:
    """True only for globally routable unicast addresses (IPv4-mapped IPv6 judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return is_public(mapped)
        if address.teredo is not None:
            return False
    if (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
    ):
        return False
    return address.is_global


def resolve_checked(host: str, port: int, allowlist: Allowlist, timeout: float | None = None) -> IPAddress:
    """Resolve once and return an address that may be contacted; every answer must pass."""
    addresses = []
    for answer in _lookup(host, port, timeout):
        address = ipaddress.ip_address(answer.split("%")[0])
        if not (is_public(address) or allowlist.allows(host, address)):
            # The caller is not told which address a name resolves to: that would map internal DNS.
            log.warning("refused %r: it resolves to the non-public address %s", host, address)
            raise AddressNotAllowed(
                f"host {host!r} is not a public address or does not resolve to one; an operator can allow "
                "private hosts with DETECTOR_URL_ALLOWLIST"
            )
        addresses.append(address)
    if not addresses:
        raise UpstreamError(f"host {host!r} has no address")
    return addresses[0]


def _lookup(host: str, port: int, timeout: float | None) -> list[str]:
    """The addresses ``host`` names: a literal address (a camera's 192.168.1.20) as it is, a name
    through getaddrinfo.

    getaddrinfo has no timeout of its own, so it runs on a small pool and the caller stops
    waiting after ``timeout``; a hung lookup then occupies a resolver thread, not a request.
    A literal needs neither: handing it to a pool thread and back costs a scheduling round trip.
    """
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    lookup = _RESOLVER.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        return [info[4][0] for info in lookup.result(timeout=timeout)]
    except FutureTimeout:
        raise UpstreamTimeout(f"resolving {host!r} ran out of time") from None
    except (socket.gaierror, UnicodeError) as exc:
        raise UpstreamError(f"could not resolve host {host!r}: {exc}") from None


class Fetcher:
    """One fetch policy, applied to every URL; thread-safe (no shared connection state)."""

    def __init__(self, policy: FetchPolicy):
        self.policy = policy
        self.allowlist = Allowlist(policy.allowlist)

    def fetch(self, url: str, timeout: float | None = None) -> FetchedImage:
        """Download ``url``; ``timeout`` (e.g. a gRPC client's deadline) can only shorten the policy's."""
        budget = self.policy.deadline if timeout is None else min(self.policy.deadline, timeout)
        deadline = time.monotonic() + budget
        with _Watchdog(deadline) as watchdog:
            try:
                fetched = self._fetch(url, deadline)
            except UpstreamError:
                if watchdog.expired:
                    raise UpstreamTimeout("fetching the image ran out of time") from None
                raise
            if watchdog.expired:  # a shut-down socket reads as a clean end: the body may be cut short
                raise UpstreamTimeout("fetching the image ran out of time")
            return fetched

    def _fetch(self, url: str, deadline: float) -> FetchedImage:
        current = url
        for _ in range(self.policy.max_redirects + 1):
            target = parse_url(current)
            address = resolve_checked(target.host, target.port, self.allowlist, self._remaining(deadline))
            response = self._request(target, address, deadline)
            try:
                if response.status in _REDIRECTS:
                    location = response.headers.get("Location")
                    if not location:
                        raise UpstreamError(f"upstream redirect {response.status} without a Location")
                    current = urljoin(current, location)
                    continue
                if response.status >= 500:
                    raise UpstreamError(f"upstream answered HTTP {response.status}")
                if response.status >= 300:
                    raise UpstreamRejected(f"the image URL answered HTTP {response.status}")
                data = self._read_capped(response, deadline)
                return FetchedImage(data, response.headers.get("Content-Type", ""), current)
            finally:
                response.release_conn()
        raise UpstreamError(f"more than {self.policy.max_redirects} redirects")

    def _remaining(self, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise UpstreamTimeout("fetching the image ran out of time")
        return left

    def _request(self, target: _Target, address: IPAddress, deadline: float) -> urllib3.BaseHTTPResponse:
        left = self._remaining(deadline)
        timeout = urllib3.Timeout(
            connect=min(self.policy.connect_timeout, left), read=min(self.policy.read_timeout, left)
        )
        common = dict(port=target.port, timeout=timeout, retries=False, maxsize=1)
        if target.scheme == "https":
            pool: urllib3.HTTPConnectionPool = _TLSPool(
                str(address), server_hostname=target.host, assert_hostname=target.host, **common
            )
        else:
            pool = _Pool(str(address), **common)
        headers = {"Host": target.host_header, "User-Agent": _USER_AGENT, "Accept": "image/*"}
        try:
            return pool.urlopen(
                "GET", target.path, headers=headers, redirect=False, preload_content=False,
                retries=False, assert_same_host=False,
            )
        except NewConnectionError:  # a subclass of ConnectTimeoutError, but a refusal, not a timeout
            raise UpstreamError(f"could not connect to {target.host}:{target.port}") from None
        except (ConnectTimeoutError, ReadTimeoutError):
            raise UpstreamTimeout(f"timed out waiting for {target.host}") from None
        except SSLError as exc:
            raise UpstreamError(f"TLS error talking to {target.host}: {exc.__class__.__name__}") from None
        except (ProtocolError, LocationParseError, HTTPError, OSError) as exc:
            raise UpstreamError(f"could not fetch from {target.host}: {exc.__class__.__name__}") from None

    def _read_capped(self, response: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
        cap = self.policy.max_bytes
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise ImageTooLarge(f"image is {int(declared)} bytes; the limit is {cap}")
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                self._remaining(deadline)
                chunk = response.read1(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > cap:
                    raise ImageTooLarge(f"image is larger than the limit of {cap} bytes")
                chunks.append(chunk)
        except ReadTimeoutError:
            raise UpstreamTimeout("the image server stopped sending data") from None
        except (ProtocolError, HTTPError, OSError) as exc:
            raise UpstreamError(f"the image download failed: {exc.__class__.__name__}") from None
        return b"".join(chunks)
