"""The URL fetcher: address policy, redirects, size cap and time limits, against a local server."""

from __future__ import annotations

import ipaddress
import threading
import time

import pytest

from common.settings import FetchPolicy
from common.errors import AddressNotAllowed, ImageTooLarge, InvalidURL, UpstreamError, UpstreamRejected, UpstreamTimeout
from serving.fetch import Allowlist, Fetcher, is_public, parse_url, resolve_checked


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "0.0.0.0",
        "224.0.0.1", "100.64.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "ff02::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "2002:7f00:1::", "64:ff9b::a00:1",
    ],
)
def test_non_public_addresses_are_refused(address):
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address):
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    ["", "ftp://example.com/a.jpg", "file:///etc/passwd", "gopher://x", "http://", "http://[::1", "example.com/a.jpg",
     "http://user:pw@example.com/a.jpg", "http://example.com:99999/a.jpg", "x" * 5000],
)
def test_malformed_or_unsupported_urls_are_invalid(url):
    with pytest.raises(InvalidURL):
        parse_url(url)


def test_parse_keeps_host_header_and_path():
    target = parse_url("https://Example.com:8443/a/b.jpg?x=1")
    assert (target.scheme, target.host, target.port, target.path) == ("https", "example.com", 8443, "/a/b.jpg?x=1")
    assert target.host_header == "example.com:8443"
    assert parse_url("http://[2001:db8::1]/x").host_header == "[2001:db8::1]"


def test_localhost_names_are_resolved_and_refused_unless_allowlisted():
    with pytest.raises(AddressNotAllowed):
        resolve_checked("localhost", 80, Allowlist(()))
    assert str(resolve_checked("localhost", 80, Allowlist(("localhost",)))) in ("127.0.0.1", "::1")
    assert str(resolve_checked("127.0.0.1", 80, Allowlist(("127.0.0.0/8",)))) == "127.0.0.1"
    with pytest.raises(AddressNotAllowed):
        resolve_checked("127.0.0.2", 80, Allowlist(("127.0.0.1",)))


def test_unresolvable_host_is_an_upstream_error():
    with pytest.raises(UpstreamError):
        resolve_checked("no-such-host.invalid", 80, Allowlist(()))


@pytest.fixture
def fetcher():
    return Fetcher(FetchPolicy(connect_timeout=1, read_timeout=1, deadline=2.5, max_bytes=1_000_000,
                               max_redirects=3, allowlist=("127.0.0.1",)))


def test_fetches_an_allowlisted_local_image(fetcher, image_server):
    fetched = fetcher.fetch(image_server.url("/case/photo.jpg"))
    assert fetched.data[:2] == b"\xff\xd8" and fetched.content_type == "image/jpeg"


def test_follows_a_redirect_and_checks_every_hop(fetcher, image_server):
    assert fetcher.fetch(image_server.url("/case/redirect-ok")).url.endswith("/case/photo.jpg")
    for case in ("redirect-metadata", "redirect-private"):
        with pytest.raises(AddressNotAllowed):
            fetcher.fetch(image_server.url(f"/case/{case}"))
    with pytest.raises(InvalidURL):
        fetcher.fetch(image_server.url("/case/redirect-ftp"))
    with pytest.raises(UpstreamError, match="redirects"):
        fetcher.fetch(image_server.url("/case/redirect-loop"))


def test_byte_cap_stops_declared_and_endless_bodies(fetcher, image_server):
    with pytest.raises(ImageTooLarge):
        fetcher.fetch(image_server.url("/case/huge-declared"))
    started = time.monotonic()
    with pytest.raises(ImageTooLarge):
        fetcher.fetch(image_server.url("/case/endless"))
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("case", ["slow-headers", "slow-body"])
def test_slow_servers_hit_the_time_limits(fetcher, image_server, case):
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        fetcher.fetch(image_server.url(f"/case/{case}"))
    assert time.monotonic() - started < 4.0


def test_a_shorter_caller_deadline_wins(fetcher, image_server):
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        fetcher.fetch(image_server.url("/case/slow-body"), timeout=0.8)
    assert time.monotonic() - started < 2.0


def test_upstream_client_errors_are_the_callers_to_fix(fetcher, image_server):
    for status in (404, 403, 410, 304):
        with pytest.raises(UpstreamRejected, match=str(status)):
            fetcher.fetch(image_server.url(f"/case/status-{status}"))


def test_error_statuses_and_refused_connections_are_upstream_errors(fetcher, image_server):
    with pytest.raises(UpstreamError, match="500"):
        fetcher.fetch(image_server.url("/case/status-500"))
    from harness.ports import free_port

    with pytest.raises(UpstreamError):
        fetcher.fetch(f"http://127.0.0.1:{free_port()}/x.jpg")


def test_a_refusal_does_not_tell_the_caller_where_a_name_points(caplog):
    """Saying which private address a name resolves to would let an outsider map internal DNS."""
    import logging

    with caplog.at_level(logging.WARNING, logger="serving.fetch"), pytest.raises(AddressNotAllowed) as refused:
        resolve_checked("localhost", 80, Allowlist(()))
    message = refused.value.message
    assert "127.0.0.1" not in message and "::1" not in message
    assert "DETECTOR_URL_ALLOWLIST" in message
    assert "127.0.0.1" in caplog.text or "::1" in caplog.text


def test_headers_sent_a_byte_at_a_time_cannot_stretch_the_deadline(image_server):
    """Every byte arrives well inside the read timeout; the fetch still ends at its deadline."""
    fetcher = Fetcher(FetchPolicy(connect_timeout=2, read_timeout=2, deadline=1.5, allowlist=("127.0.0.1",)))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        fetcher.fetch(image_server.url("/case/drip-headers"))
    assert time.monotonic() - started < 1.5 + 1.0


def test_a_hung_name_lookup_ends_at_the_deadline(monkeypatch):
    import socket

    release = threading.Event()

    def hung(*args, **kwargs):
        release.wait(10)
        raise socket.gaierror("gave up")

    monkeypatch.setattr(socket, "getaddrinfo", hung)
    fetcher = Fetcher(FetchPolicy(deadline=1.0))
    started = time.monotonic()
    try:
        with pytest.raises(UpstreamTimeout, match="resolving"):
            fetcher.fetch("http://slow-dns.example/x.jpg")
        assert time.monotonic() - started < 2.0
    finally:
        release.set()


def _timed_out_after(fetcher: Fetcher, url: str, timeout: float) -> float:
    """Seconds until ``url`` (whose headers never end) is given up as out of time."""
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match="fetching the image ran out of time"):
        fetcher.fetch(url, timeout=timeout)
    return time.monotonic() - started


def _patient() -> Fetcher:
    """A fetcher whose read timeout never trips on a byte every 0.2 s: only the deadline ends a drip."""
    return Fetcher(FetchPolicy(connect_timeout=2, read_timeout=30, deadline=30, allowlist=("127.0.0.1",)))


def test_one_thread_keeps_the_deadline_of_every_fetch(fetcher, image_server):
    """A timer thread per fetch cost about 150 us a request; one thread per process serves them all."""
    for _ in range(20):
        fetcher.fetch(image_server.url("/case/photo.jpg"))
    assert [thread.name for thread in threading.enumerate()].count("fetch-deadlines") == 1


def test_a_short_deadline_is_not_held_behind_a_longer_one_set_earlier(image_server):
    fetcher, url = _patient(), image_server.url("/case/drip-headers")
    longer: list[float] = []
    waiting = threading.Thread(target=lambda: longer.append(_timed_out_after(fetcher, url, 4.0)))
    waiting.start()
    time.sleep(0.3)
    assert _timed_out_after(fetcher, url, 0.5) < 0.5 + 1.0
    waiting.join(15)
    assert longer and 4.0 - 0.05 <= longer[0] < 4.0 + 1.5


def _fetch_in_child(url: str, photo: str, answers) -> None:
    fetcher = _patient()
    looked_up = resolve_checked("localhost", 80, Allowlist(("localhost",)), timeout=5)
    answers.put((str(looked_up), len(fetcher.fetch(photo).data), _timed_out_after(fetcher, url, 0.8)))


def test_a_process_forked_after_fetching_resolves_and_keeps_deadlines(image_server):
    """gunicorn and the gRPC fork server fork before any fetch; a fork after one must still work."""
    import multiprocessing

    photo = image_server.url("/case/photo.jpg")
    assert _patient().fetch(photo).data  # the parent's deadline thread now runs
    assert resolve_checked("localhost", 80, Allowlist(("localhost",)))  # and its resolver threads
    fork = multiprocessing.get_context("fork")
    answers = fork.Queue()
    child = fork.Process(target=_fetch_in_child, args=(image_server.url("/case/drip-headers"), photo, answers))
    child.start()
    try:
        looked_up, size, seconds = answers.get(timeout=20)
    finally:
        child.kill()
        child.join()
    assert looked_up in ("127.0.0.1", "::1") and size > 0 and seconds < 0.8 + 1.0


@pytest.mark.parametrize("literal, allowed", [("127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("8.8.8.8", None),
                                              ("2001:4860:4860::8888", None)])
def test_a_literal_address_is_checked_without_a_lookup(monkeypatch, literal, allowed):
    """Cameras are often addressed by IP: no resolver thread, the same checks."""
    import socket

    def no_lookup(*args, **kwargs):
        raise AssertionError("a literal address went to getaddrinfo")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    assert str(resolve_checked(literal, 80, Allowlist((allowed,) if allowed else ()))) == literal
    if allowed:
        with pytest.raises(AddressNotAllowed):
            resolve_checked(literal, 80, Allowlist(()))
    with pytest.raises(AddressNotAllowed):
        resolve_checked("::ffff:10.0.0.1", 80, Allowlist(()))
