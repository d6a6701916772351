"""The Open Inference Protocol (/v2 and inference.GRPCInferenceService) against the real service.

The client matrix runs Triton's and KServe's own clients (harness/oip_clients.py, in .venv-clients);
bad input is sent raw, since no client library would send it, and each refusal must be clear,
carry /v1's status for the same fault, and be counted.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import requests

from tests.conftest import REPO_ROOT

CLIENTS_PYTHON = REPO_ROOT / ".venv-clients" / "bin" / "python"
DOG = "darknet_dog.jpg"
OUTPUTS = ["num_detections", "detection_boxes", "detection_scores", "detection_classes", "detection_labels"]


@pytest.fixture(scope="module")
def dog(shared_dir: Path) -> bytes:
    return (shared_dir / "eval" / "images" / DOG).read_bytes()


@pytest.fixture(scope="module")
def expected(service, image_server) -> list[str]:
    status, body = service.predict_http(image_server.url(f"/images/{DOG}"))
    assert status == 200 and body["objects"]
    return body["objects"]


def _stub(service):
    from proto import grpc_inference_pb2_grpc

    return grpc_inference_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(service.grpc_target))


def _length_prefixed(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def test_every_client_gets_the_predict_labels_over_every_call(service, image_server, dog, expected, shared_dir):
    if not CLIENTS_PYTHON.is_file():
        pytest.fail(f"{CLIENTS_PYTHON} is missing: make clients (make test makes it)")
    lines = []
    for clients in ("tritonclient", "kserve"):
        result = subprocess.run(
            [str(CLIENTS_PYTHON), str(REPO_ROOT / "harness" / "oip_clients.py"), "--clients", clients,
             "--http", service.http_url.removeprefix("http://"), "--grpc", service.grpc_target, "--model", "yolov5s",
             "--image", str(shared_dir / "eval" / "images" / DOG), "--url", image_server.url(f"/images/{DOG}")],
            capture_output=True, text=True, timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        lines += [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    failed = [f"{line['client']} {line['call']}: {line['error']}\n{line['trace']}" for line in lines if "error" in line]
    assert failed == []
    assert {line["client"] for line in lines} == {
        "tritonclient.http", "tritonclient.http.aio", "tritonclient.grpc", "tritonclient.grpc.aio", "kserve"}
    inferences = [line for line in lines if "B=" in line["call"]]
    assert len(inferences) >= 16
    for line in inferences:
        size = int(line["call"].rsplit("B=", 1)[1])
        summary = line["result"]
        assert summary["labels"] == [expected] * size, line["call"]
        count = len(expected)
        assert summary["shapes"] == {"num_detections": [size, 1], "detection_boxes": [size, count, 4],
                                     "detection_scores": [size, count], "detection_classes": [size, count],
                                     "detection_labels": [size, count]}, line["call"]
        assert summary["dtypes"]["detection_boxes"] == "float32" and summary["dtypes"]["num_detections"] == "int32"
    calls = {f"{line['client']} {line['call']}": line["result"] for line in lines}
    assert all(calls[f"{client} {what}"] is True for client in ("tritonclient.http", "tritonclient.grpc")
               for what in ("live", "ready", "model ready"))
    metadata = calls["tritonclient.http model metadata"]
    assert [i["name"] for i in metadata["inputs"]] == ["IMAGE", "URL"] and metadata["name"] == "yolov5s"
    assert [o["name"] for o in metadata["outputs"]] == OUTPUTS
    assert calls["tritonclient.grpc model metadata"]["outputs"][1] == {
        "name": "detection_boxes", "datatype": "FP32", "shape": ["-1", "-1", "4"]}


def test_json_answers_carry_boxes_in_original_pixels_like_v1(service, image_server):
    url = image_server.url(f"/images/{DOG}")
    v1 = requests.post(f"{service.http_url}/v1/detect", json={"url": url, "threshold": 0.5}, timeout=60).json()
    v2 = requests.post(f"{service.http_url}/v2/models/yolov5s/infer", timeout=60, json={
        "id": "r1", "parameters": {"threshold": 0.5},
        "inputs": [{"name": "URL", "datatype": "BYTES", "shape": [1], "data": [url]}]}).json()
    assert v2["model_name"] == "yolov5s" and v2["id"] == "r1" and v2["model_version"] == "1"
    outputs = {o["name"]: o for o in v2["outputs"]}
    boxes = [box for box in zip(*[iter(outputs["detection_boxes"]["data"])] * 4)]
    assert outputs["detection_labels"]["data"] == [d["label"] for d in v1["detections"]]
    assert [c for b in boxes for c in b] == pytest.approx([c for d in v1["detections"] for c in d["box"]], abs=0.01)
    assert outputs["detection_scores"]["data"] == pytest.approx([d["score"] for d in v1["detections"]], abs=1e-4)


def test_the_labelled_photos_get_the_same_answers_over_v2_as_over_predict(service, image_server, shared_dir):
    """The acceptance score cannot move: every labelled photo, its labels over both protocol transports."""
    from proto import grpc_inference_pb2 as pb

    labels = json.loads((shared_dir / "eval" / "labels.json").read_text())
    stub = _stub(service)
    for name in labels:
        photo = (shared_dir / "eval" / "images" / name).read_bytes()
        _, body = service.predict_http(image_server.url(f"/images/{name}"))
        reply = stub.ModelInfer(pb.ModelInferRequest(model_name="yolov5s", inputs=[pb.ModelInferRequest.InferInputTensor(
            name="IMAGE", datatype="BYTES", shape=[1], contents=pb.InferTensorContents(bytes_contents=[photo]))]),
            timeout=120)
        raw = dict(zip([o.name for o in reply.outputs], reply.raw_output_contents))
        count = struct.unpack("<i", raw["num_detections"])[0]
        got, offset = [], 0
        while offset < len(raw["detection_labels"]):
            (length,) = struct.unpack_from("<I", raw["detection_labels"], offset)
            got.append(raw["detection_labels"][offset + 4:offset + 4 + length].decode())
            offset += 4 + length
        rest = requests.post(f"{service.http_url}/v2/models/yolov5s/infer", timeout=120, json={"inputs": [
            {"name": "URL", "datatype": "BYTES", "shape": [1], "data": [image_server.url(f"/images/{name}")]}]}).json()
        rest_labels = {o["name"]: o["data"] for o in rest["outputs"]}["detection_labels"]
        assert got[:count] == rest_labels == body["objects"], name


def _rest(service, body: bytes | dict, path: str = "/v2/models/yolov5s/infer", **headers: str):
    if isinstance(body, dict):
        return requests.post(f"{service.http_url}{path}", json=body, headers=headers, timeout=60)
    return requests.post(f"{service.http_url}{path}", data=body, headers=headers, timeout=60)


def _binary(header: dict, binary: bytes, declared: int | None = None) -> tuple[bytes, dict]:
    text = json.dumps(header).encode()
    return text + binary, {"Inference-Header-Content-Length": str(len(text) if declared is None else declared)}


BAD_REQUESTS = {
    "a wrong datatype": ({"inputs": [{"name": "URL", "datatype": "FP32", "shape": [1], "data": [1.0]}]},
                         400, "invalid_request", "must be BYTES"),
    "a wrong shape": ({"inputs": [{"name": "URL", "datatype": "BYTES", "shape": [1, 2], "data": ["a", "b"]}]},
                      400, "invalid_request", "shape"),
    "no input": ({"inputs": []}, 400, "invalid_request", "exactly one input"),
    "both inputs": ({"inputs": [{"name": "URL", "datatype": "BYTES", "shape": [1], "data": ["x"]},
                                {"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": ["eA=="]}]},
                    400, "invalid_request", "not URL and IMAGE"),
    "an unknown parameter": ({"parameters": {"treshold": 0.5},
                              "inputs": [{"name": "URL", "datatype": "BYTES", "shape": [1], "data": ["x"]}]},
                             400, "invalid_request", "treshold"),
    "a threshold out of range": ({"parameters": {"threshold": 2},
                                  "inputs": [{"name": "URL", "datatype": "BYTES", "shape": [1], "data": ["x"]}]},
                                 400, "invalid_request", "threshold"),
    "undecodable bytes": ({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": ["bm90IGFuIGltYWdl"]}]},
                          415, "unsupported_media_type", "image"),
    "a URL the service may not fetch": ({"inputs": [{"name": "URL", "datatype": "BYTES", "shape": [1],
                                                     "data": ["http://169.254.169.254/latest/meta-data/"]}]},
                                        403, "address_not_allowed", "not a public address"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_bad_input_is_refused_clearly_with_v1s_status_and_counted(service, case):
    body, status, code, words = BAD_REQUESTS[case]
    before = service.error_count("v2-http", code)
    answer = _rest(service, body)
    assert answer.status_code == status, answer.text
    assert list(answer.json()) == ["error"] and words in answer.json()["error"]
    assert service.error_count("v2-http", code) == before + 1


def test_binary_framing_that_disagrees_with_the_body_is_refused(service, dog):
    header = {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 10**6}}]}
    body, headers = _binary(header, _length_prefixed(dog))
    short = _rest(service, body, **headers)
    assert short.status_code == 400 and "binary_data_size" in short.json()["error"]
    right = {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
                         "parameters": {"binary_data_size": len(dog) + 4}}]}
    body, headers = _binary(right, _length_prefixed(dog) + b"trailing")
    extra = _rest(service, body, **headers)
    assert extra.status_code == 400 and "no input's binary_data_size" in extra.json()["error"]
    body, headers = _binary(right, _length_prefixed(dog), declared=2**40)
    huge = _rest(service, body, **headers)
    assert huge.status_code == 400 and "Inference-Header-Content-Length" in huge.json()["error"]
    body, headers = _binary(right, _length_prefixed(dog))
    ok = _rest(service, body, **headers)
    assert ok.status_code == 200, ok.text


def test_unknown_models_and_versions_are_404_and_not_found(service):
    from proto import grpc_inference_pb2 as pb

    for path in ("/v2/models/nope", "/v2/models/yolov5s/versions/7", "/v2/models/yolov5s/versions/latest/ready"):
        answer = requests.get(f"{service.http_url}{path}", timeout=30)
        assert answer.status_code == 404 and list(answer.json()) == ["error"], path
    assert requests.get(f"{service.http_url}/v2/models/yolov5s/versions/1/ready", timeout=30).status_code == 200
    infer = _rest(service, {"inputs": [{"name": "URL", "datatype": "BYTES", "shape": [1], "data": ["x"]}]},
                  path="/v2/models/yolov5s/versions/2/infer")
    assert infer.status_code == 404 and "version 2" in infer.json()["error"]
    stub = _stub(service)
    with pytest.raises(grpc.RpcError) as refused:
        stub.ModelMetadata(pb.ModelMetadataRequest(name="nope"), timeout=30)
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    # ModelReady answers "not ready", as Triton does (tests/service/test_triton_conformance.py).
    for request in (pb.ModelReadyRequest(name="nope"), pb.ModelReadyRequest(name="yolov5s", version="3")):
        assert stub.ModelReady(request, timeout=30).ready is False


def test_grpc_refuses_bad_tensors_as_detect_does(service, dog):
    from proto import grpc_inference_pb2 as pb

    tensor = pb.ModelInferRequest.InferInputTensor
    stub = _stub(service)
    before = service.error_count("v2-grpc", "invalid_request")
    cases = [
        pb.ModelInferRequest(model_name="yolov5s", inputs=[tensor(name="IMAGE", datatype="FP32", shape=[1])]),
        pb.ModelInferRequest(model_name="yolov5s", inputs=[tensor(name="IMAGE", datatype="BYTES", shape=[2])],
                             raw_input_contents=[_length_prefixed(dog)]),
        pb.ModelInferRequest(model_name="yolov5s", inputs=[tensor(name="IMAGE", datatype="BYTES", shape=[1])],
                             raw_input_contents=[_length_prefixed(dog)[:-5]]),
        pb.ModelInferRequest(model_name="yolov5s"),
    ]
    for request in cases:
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(request, timeout=30)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    assert service.error_count("v2-grpc", "invalid_request") == before + len(cases)
    with pytest.raises(grpc.RpcError) as undecodable:
        stub.ModelInfer(pb.ModelInferRequest(model_name="yolov5s", inputs=[tensor(
            name="IMAGE", datatype="BYTES", shape=[1], contents=pb.InferTensorContents(bytes_contents=[b"no image"]))]),
            timeout=30)
    assert undecodable.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_health_and_reflection_list_the_protocol(service):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channel = grpc.insecure_channel(service.grpc_target)
    health = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService"), timeout=30)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    listed = subprocess.run([str(Path(sys.executable).parent / "grpcurl"), "-plaintext", service.grpc_target, "list"],
                            capture_output=True, text=True, timeout=60)
    assert "inference.GRPCInferenceService" in listed.stdout.split()
    assert requests.get(f"{service.http_url}/v2/health/live", timeout=30).status_code == 200
    assert requests.get(f"{service.http_url}/v2/health/ready", timeout=30).status_code == 200
    extensions = ["binary_tensor_data", "model_repository", "statistics"]
    assert requests.get(f"{service.http_url}/v2", timeout=30).json()["extensions"] == extensions
    from proto import grpc_inference_pb2 as pb

    assert list(_stub(service).ServerMetadata(pb.ServerMetadataRequest(), timeout=30).extensions) == extensions


def test_the_readmes_tritonclient_example_runs_as_shown(service, shared_dir, tmp_path):
    readme = (REPO_ROOT / "README.md").read_text()
    blocks = [chunk.split("```")[0] for chunk in readme.split("```python\n")[1:]]
    example = next(block for block in blocks if "tritonclient" in block)
    assert len(example.splitlines()) <= 12
    script = tmp_path / "example.py"
    script.write_text(example.replace("127.0.0.1:8080", service.http_url.removeprefix("http://"))
                      .replace("../shared/", f"{shared_dir}/"))
    result = subprocess.run([str(CLIENTS_PYTHON), str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    shown = example.splitlines()[-1].removeprefix("# ")
    assert result.stdout.split("]")[0] == shown.split("]")[0]
