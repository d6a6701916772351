"""Hostile clients and hostile images against the real processes (issue 13's findings, each a regression test).

Slow clients, a full service, callers who leave, graceful reloads under load
and decode-memory bombs; every load here is bounded in count and time and
sent to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import grpc
import pytest
import requests

from harness.polling import wait_until
from harness.service_process import ServiceProcess, error_details, peak_rss_mib
from harness.slow_clients import dripping_connections

REPO_ROOT = Path(__file__).resolve().parents[2]
PHOTO = "/case/photo.jpg"
SLOW = "/case/slow-body"  # holds its request until the fetch deadline (4 s in these services)


def _timed_predict(service: ServiceProcess, url: str) -> float:
    started = time.perf_counter()
    status, body = service.predict_http(url)
    assert status == 200, body
    return time.perf_counter() - started


def test_two_hundred_slow_clients_do_not_delay_a_good_request(service, image_server):
    """Before the buffering front, 8 connections dripping headers stopped every route for as long as they dripped."""
    url = image_server.url(PHOTO)
    baseline = [_timed_predict(service, url) for _ in range(3)]
    with dripping_connections(service.http_port, 200):
        time.sleep(1.0)
        during = [_timed_predict(service, url) for _ in range(3)]
        started = time.perf_counter()
        assert service.get("/healthz")[0] == 200
        health = time.perf_counter() - started
    assert max(during) < max(baseline) + 1.0, (baseline, during)
    assert health < 1.0


@pytest.fixture(scope="module")
def tight_service(yolov5_dir, image_server, tmp_path_factory):
    """One HTTP worker admitting 2 predictions, the gRPC server likewise, 512 MiB for decoding: limits a test can reach."""
    process = ServiceProcess(
        REPO_ROOT, yolov5_dir, tmp_path_factory.mktemp("tight-run"),
        {"DETECTOR_MAX_IN_FLIGHT": "2", "DETECTOR_DECODE_MEMORY_MB": "512", "DETECTOR_HTTP_WORKERS": "1"},
    )
    process.start()
    yield process
    process.stop()


def _wait_in_flight(service: ServiceProcess, transport: str, count: int, timeout: float = 10.0) -> None:
    wait_until(lambda: service.metric("app_requests_in_flight", transport=transport) >= count, timeout,
               f"{count} {transport} predictions in flight", every=0.05)


@contextlib.contextmanager
def _full(service: ServiceProcess, transport: str, call, url: str) -> Iterator[list[Future]]:
    """Both of the tight service's prediction slots held by slow-image requests over ``transport``."""
    with ThreadPoolExecutor(2) as pool:
        holders = [pool.submit(call, url) for _ in range(2)]
        _wait_in_flight(service, transport, 2)
        yield holders


def test_a_full_http_worker_refuses_at_once_with_retry_after(tight_service, image_server):
    service = tight_service
    before = service.error_count("http", "overloaded")
    with _full(service, "http", service.predict_http, image_server.url(SLOW)) as holders:
        started = time.perf_counter()
        refused = requests.post(f"{service.http_url}/predict", json={"url": image_server.url(PHOTO)}, timeout=30)
        refused_after = time.perf_counter() - started
        health_started = time.perf_counter()
        health = requests.get(f"{service.http_url}/healthz", timeout=30)
        health_after = time.perf_counter() - health_started
        assert [h.result()[0] for h in holders] == [504, 504]
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["code"] == "overloaded"
    assert refused_after < 1.0 and health.status_code == 200 and health_after < 1.0
    assert service.error_count("http", "overloaded") == before + 1
    assert service.predict_http(image_server.url(PHOTO))[0] == 200


def test_a_full_grpc_server_answers_resource_exhausted_with_retry_info(tight_service, image_server):
    service = tight_service
    before = service.error_count("grpc", "overloaded")
    with _full(service, "grpc", service.predict_grpc, image_server.url(SLOW)) as holders:
        started = time.perf_counter()
        with pytest.raises(grpc.RpcError) as refused:
            service.predict_grpc(image_server.url(PHOTO))
        refused_after = time.perf_counter() - started
        assert service.grpc_serving()
        for holder in holders:
            with pytest.raises(grpc.RpcError):
                holder.result()
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and refused_after < 1.0
    details = error_details(refused.value)
    assert details["reason"] == "overloaded" and details["retry_seconds"] == 1
    assert service.error_count("grpc", "overloaded") == before + 1
    assert service.predict_grpc(image_server.url(PHOTO))


def _wait_count(service: ServiceProcess, transport: str, code: str, want: float, timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    while (got := service.error_count(transport, code)) < want and time.monotonic() < deadline:
        time.sleep(0.1)
    return got


def test_an_http_caller_who_left_costs_no_forward_pass(tight_service, image_server):
    """The photo arrives 1.5 s late; the caller gave up after 0.5 s: the model must not run for nobody."""
    service = tight_service
    before = service.error_count("http", "cancelled")
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(f"{service.http_url}/predict", json={"url": image_server.url("/case/late-photo")}, timeout=0.5)
    assert _wait_count(service, "http", "cancelled", before + 1) == before + 1


def test_a_cancelled_grpc_call_costs_no_forward_pass(tight_service, image_server):
    from proto import inference_pb2, inference_pb2_grpc

    service = tight_service
    before = service.error_count("grpc", "cancelled")
    with grpc.insecure_channel(service.grpc_target) as channel:
        stub = inference_pb2_grpc.InstanceDetectorStub(channel)
        call = stub.Predict.future(inference_pb2.InstanceDetectorInput(url=image_server.url("/case/late-photo")))
        time.sleep(0.3)
        call.cancel()
    assert _wait_count(service, "grpc", "cancelled", before + 1) == before + 1


def test_a_batch_of_memory_bombs_stays_inside_the_decode_budget(tight_service, image_server):
    """16 URLs of a 95 KB PNG that decodes to 49 MP of 16-bit pixels (~440 MB each to convert).

    Decoded 4 at a time they took a worker past 1.7 GB; the 512 MiB budget lets one in at a time.
    """
    service = tight_service
    [worker] = service.http_worker_pids()
    before = peak_rss_mib(worker)
    urls = [image_server.url(f"/case/sixteen-bit-7000.png?{index}") for index in range(16)]
    started = time.perf_counter()
    status, body = service.post("/v1/detect:batch", requests.compat.json.dumps({"urls": urls}).encode(), timeout=300)
    elapsed = time.perf_counter() - started
    assert status == 200
    codes = [item.get("error", {}).get("code", "ok") for item in body["results"]]
    # Each answered, or refused as busy if the budget stayed taken past the fetch deadline.
    assert set(codes) <= {"ok", "overloaded"} and "ok" in codes, codes
    growth = peak_rss_mib(worker) - before
    assert growth < 800, f"peak RSS grew by {growth:.0f} MiB in {elapsed:.1f} s"


def test_an_image_that_alone_exceeds_the_decode_budget_is_refused_before_decoding(tight_service, image_server):
    """49 MP of RGBA is under the pixel cap, but compositing it would take ~735 MB: over the 512 MiB budget."""
    service = tight_service
    [worker] = service.http_worker_pids()
    before = peak_rss_mib(worker)
    started = time.perf_counter()
    status, body = service.predict_http(image_server.url("/case/rgba-7000.png"))
    assert (status, body["error"]["code"]) == (413, "image_too_large")
    assert "MiB" in body["error"]["message"]
    assert time.perf_counter() - started < 5.0
    assert peak_rss_mib(worker) - before < 100


def test_a_graceful_reload_under_load_fails_no_request(tight_service, image_server):
    """``supervisorctl signal HUP http``: new workers load their model before taking a connection."""
    service = tight_service
    old_workers = service.http_worker_pids()
    url = image_server.url(PHOTO)
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            statuses.append(service.predict_http(url)[0])

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    assert "http: signalled" in service.supervisorctl("signal", "HUP", "http")
    try:
        wait_until(lambda: (workers := service.http_worker_pids()) and not set(workers) & set(old_workers), 60,
                   "new gunicorn workers replace the old ones", every=0.2)
        time.sleep(2.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert len(statuses) > 10 and set(statuses) == {200}, statuses
