"""X-Request-Timeout-Ms and gRPC deadlines in the real service: what cannot end in time is skipped and counted."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import requests

DOG = "darknet_dog.jpg"


@pytest.fixture(scope="module")
def dog(shared_dir: Path) -> bytes:
    return (shared_dir / "eval" / "images" / DOG).read_bytes()


def _detect(service, image: bytes, timeout_ms: str | None) -> requests.Response:
    headers = {"Content-Type": "image/jpeg"} | ({"X-Request-Timeout-Ms": timeout_ms} if timeout_ms else {})
    return requests.post(f"{service.http_url}/v1/detect", data=image, headers=headers, timeout=60)


def test_a_deadline_shorter_than_the_forward_is_504_and_counted(service, dog):
    assert _detect(service, dog, None).status_code == 200  # the model's forward time is now measured
    before = service.error_count("http", "deadline_exceeded")
    refused = _detect(service, dog, "2")
    assert refused.status_code == 504, refused.text
    assert refused.json()["error"]["code"] == "deadline_exceeded" and "ms" in refused.json()["error"]["message"]
    assert service.error_count("http", "deadline_exceeded") == before + 1
    assert _detect(service, dog, "60000").status_code == 200


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1e12", "nan"])
def test_a_malformed_deadline_is_the_callers_400(service, dog, value):
    refused = _detect(service, dog, value)
    assert refused.status_code == 400 and "X-Request-Timeout-Ms" in refused.json()["error"]["message"]


def test_under_a_queue_frames_that_cannot_make_it_are_shed_and_the_rest_answer(service, dog):
    """Eight cameras at once with 150 ms each: the model serves one at a time, so some must be shed."""
    assert _detect(service, dog, None).status_code == 200
    before = service.error_count("http", "deadline_exceeded")

    def frame(_: int) -> tuple[int, float]:
        started = time.monotonic()
        return _detect(service, dog, "150").status_code, time.monotonic() - started

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(frame, range(16)))
    codes = [code for code, _ in answers]
    assert set(codes) <= {200, 504} and 504 in codes and 200 in codes, codes
    assert service.error_count("http", "deadline_exceeded") == before + codes.count(504)


def test_a_grpc_deadline_too_short_for_the_forward_is_deadline_exceeded(service, image_server):
    from proto import detection_pb2, detection_pb2_grpc

    with grpc.insecure_channel(service.grpc_target) as channel:
        stub = detection_pb2_grpc.DetectorStub(channel)
        url = image_server.url(f"/images/{DOG}")
        assert stub.Detect(detection_pb2.DetectRequest(url=url), timeout=60).detections
        with pytest.raises(grpc.RpcError) as refused:
            stub.Detect(detection_pb2.DetectRequest(url=url), timeout=0.01)
        assert refused.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
