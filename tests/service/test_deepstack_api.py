"""The DeepStack / CodeProject.AI route, driven by the real client libraries from PyPI."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from PIL import Image

from harness.service_process import ServiceProcess

REPO_ROOT = Path(__file__).resolve().parents[2]
DOG = "darknet_dog.jpg"


@pytest.fixture(scope="module")
def dog(shared_dir) -> bytes:
    return (shared_dir / "eval" / "images" / DOG).read_bytes()


def _check(predictions: list[dict], size: tuple[int, int], min_confidence: float) -> None:
    width, height = size
    assert predictions and "dog" in [p["label"] for p in predictions]
    for found in predictions:
        assert set(found) == {"label", "confidence", "x_min", "y_min", "x_max", "y_max"}
        assert all(isinstance(found[k], int) for k in ("x_min", "y_min", "x_max", "y_max"))
        assert 0 <= found["x_min"] < found["x_max"] <= width and 0 <= found["y_min"] < found["y_max"] <= height
        assert found["confidence"] >= min_confidence


def test_deepstack_python_client_detects_the_dog(service, dog, shared_dir):
    from deepstack.core import DeepstackObject

    client = DeepstackObject(ip="127.0.0.1", port=service.http_port, timeout=60, min_confidence=0.45)
    size = Image.open(shared_dir / "eval" / "images" / DOG).size
    _check(client.detect(dog), size, 0.45)


def test_codeproject_ai_client_detects_the_dog(service, dog, shared_dir):
    from codeprojectai.core import CodeProjectAIObject

    client = CodeProjectAIObject(ip="127.0.0.1", port=service.http_port, timeout=60, min_confidence=0.3)
    size = Image.open(shared_dir / "eval" / "images" / DOG).size
    _check(client.detect(dog), size, 0.3)


def test_answers_match_v1_detect_at_the_same_threshold(service, dog):
    ours = requests.post(f"{service.http_url}/v1/detect", files={"image": dog}, data={"threshold": "0.5"}, timeout=60)
    theirs = requests.post(f"{service.http_url}/v1/vision/detection", files={"image": dog},
                           data={"min_confidence": "0.5"}, timeout=60)
    assert ours.status_code == theirs.status_code == 200
    body = theirs.json()
    assert body["success"] is True and body["count"] == len(body["predictions"])
    expected = ours.json()["detections"]
    assert [p["label"] for p in body["predictions"]] == [d["label"] for d in expected]
    for found, want in zip(body["predictions"], expected):
        assert [found["x_min"], found["y_min"], found["x_max"], found["y_max"]] == pytest.approx(want["box"], abs=0.51)
        assert found["confidence"] == pytest.approx(want["score"], abs=1e-4)


@pytest.mark.parametrize(
    ("files", "data", "status", "code"),
    [
        ({}, {"min_confidence": "0.5"}, 400, "invalid_request"),
        ({"image": b"not a picture"}, {}, 415, "unsupported_media_type"),
        ({"image": b""}, {}, 400, "invalid_request"),
        ({"image": b"x"}, {"min_confidence": "high"}, 400, "invalid_request"),
        ({"image": b"x"}, {"min_confidence": "1.5"}, 400, "invalid_request"),
    ],
    ids=["no-image", "not-an-image", "empty-image", "confidence-not-a-number", "confidence-over-one"],
)
def test_failures_answer_in_deepstack_shape_and_are_counted(service, files, data, status, code):
    before = service.error_count("deepstack", code)
    response = requests.post(f"{service.http_url}/v1/vision/detection", files=files or {"other": b""}, data=data,
                             timeout=60)
    assert response.status_code == status
    body = response.json()
    assert body["success"] is False and body["error"] and body["code"] == code
    assert service.error_count("deepstack", code) == before + 1


@pytest.fixture(scope="module")
def keyed_service(yolov5_dir, tmp_path_factory):
    process = ServiceProcess(REPO_ROOT, yolov5_dir, tmp_path_factory.mktemp("keyed-run"),
                             {"DETECTOR_DEEPSTACK_API_KEY": "s3cret-key"})
    process.start()
    yield process
    process.stop()


def test_an_api_key_when_configured_is_required(keyed_service, dog):
    from deepstack.core import DeepstackException, DeepstackObject

    url = f"{keyed_service.http_url}/v1/vision/detection"
    for data in ({}, {"api_key": "wrong"}, {"api_key": "s3cret-ke"}):
        refused = requests.post(url, files={"image": dog}, data=data, timeout=60)
        assert refused.status_code == 401 and refused.json() == {
            "success": False, "error": "Incorrect api key", "code": "unauthorized"}
    with pytest.raises(DeepstackException):
        DeepstackObject(ip="127.0.0.1", port=keyed_service.http_port, api_key="wrong", timeout=60).detect(dog)
    found = DeepstackObject(ip="127.0.0.1", port=keyed_service.http_port, api_key="s3cret-key", timeout=60).detect(dog)
    assert "dog" in [p["label"] for p in found]
