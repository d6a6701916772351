"""The installed command-line tools against the running service: the ``detect`` client and grpcurl."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
DOG = "/images/darknet_dog.jpg"


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    # Run from / so nothing depends on the repository being the working directory.
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd="/")


def test_detect_prints_the_objects_of_a_url(service, image_server):
    status, body = service.predict_http(image_server.url(DOG))
    result = _run(str(BIN / "detect"), image_server.url(DOG), "--server", service.http_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:-1] == body["objects"]


def test_detect_uploads_a_file_and_prints_boxes_as_json(service, shared_dir):
    result = _run(str(BIN / "detect"), str(shared_dir / "eval" / "images" / "darknet_dog.jpg"), "--boxes",
                  "--server", service.http_url)
    assert result.returncode == 0, result.stderr
    detections = json.loads(result.stdout)
    assert detections and {"label", "score", "box"} == set(detections[0]) and "dog" in [d["label"] for d in detections]


def test_detect_over_grpc_gives_the_same_objects(service, image_server):
    over_http = _run(str(BIN / "detect"), image_server.url(DOG), "--server", service.http_url)
    over_grpc = _run(str(BIN / "detect"), image_server.url(DOG), "--grpc", "--grpc-server", service.grpc_target)
    assert over_grpc.returncode == 0 and over_grpc.stdout == over_http.stdout


def test_detect_reports_a_refusal_and_exits_1(service):
    result = _run(str(BIN / "detect"), "http://10.0.0.1/x.jpg", "--server", service.http_url)
    assert result.returncode == 1 and result.stderr.startswith("detect: address_not_allowed:")


def test_grpcurl_lists_the_services_through_reflection(service):
    result = _run(str(BIN / "grpcurl"), "-plaintext", service.grpc_target, "list")
    assert result.returncode == 0, result.stderr
    assert {"inference.InstanceDetector", "detection.v1.Detector", "grpc.health.v1.Health"} <= set(result.stdout.split())


def test_grpcurl_predict_answers_like_http(service, image_server):
    status, body = service.predict_http(image_server.url(DOG))
    result = _run(str(BIN / "grpcurl"), "-plaintext", "-d", json.dumps({"url": image_server.url(DOG)}),
                  service.grpc_target, "inference.InstanceDetector/Predict")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"objects": body["objects"]}


def test_the_export_console_script_is_installed():
    result = _run(str(BIN / "instance-detector-export"), "--help")
    assert result.returncode == 0 and "--source" in result.stdout
