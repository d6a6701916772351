"""Several models in the real service: chosen per request on every route, listed, swapped live.

The service runs a model repository (yolov5s and mb3-centernet, the exports this session built)
on 127.0.0.1, polling it every second. The swap test adds a version and a broken one under
steady load on both transports and counts every answer.
"""

from __future__ import annotations

import shutil
import threading
import time

import grpc
import pytest
import requests

from tests.conftest import REPO_ROOT
from harness.polling import wait_until
from harness.service_process import ServiceProcess, add_version, error_details

DOG = "darknet_dog.jpg"  # in ../shared/eval/images: the image server serves it at /images/ too
CROWD = "vtest_f0060.png"


def _photo_url(image_server) -> str:
    return image_server.url(f"/images/{DOG}")


def _detector_stub(service: ServiceProcess):
    from proto import detection_pb2_grpc

    return detection_pb2_grpc.DetectorStub(grpc.insecure_channel(service.grpc_target))


@pytest.fixture(scope="module")
def two_models(yolov5_dir, centernet_dir, image_server, tmp_path_factory):
    repository = tmp_path_factory.mktemp("models")
    add_version(repository, "yolov5s", 1, yolov5_dir)
    add_version(repository, "mb3-centernet", 1, centernet_dir)
    service = ServiceProcess(REPO_ROOT, repository, tmp_path_factory.mktemp("run"),
                             {"DETECTOR_REPOSITORY_POLL_SECONDS": "1"})
    service.start()
    yield service, repository
    service.stop()


def test_the_repository_lists_both_models_and_the_default(two_models):
    from proto import detection_pb2

    service, _ = two_models
    body = requests.get(f"{service.http_url}/v1/models", timeout=30).json()
    models = {m["name"]: m for m in body["models"]}
    assert sorted(models) == ["mb3-centernet", "yolov5s"]
    assert models["yolov5s"]["default"] and not models["mb3-centernet"]["default"]
    for model in models.values():
        assert model["serving_version"] == 1 and model["versions"] == [{"version": 1, "state": "ready"}]
        assert model["classes"] == 80 and model["license"] and model["precision"] in ("fp32", "bf16", "int8")
    listed = _detector_stub(service).ListModels(detection_pb2.ListModelsRequest(), timeout=30)
    assert {m.name: (m.default, m.serving_version, m.info.name) for m in listed.models} == {
        "yolov5s": (True, 1, "yolov5s"), "mb3-centernet": (False, 1, "mb3-centernet")}
    assert requests.get(f"{service.http_url}/v1/model", timeout=30).json()["name"] == "yolov5s"


def test_a_version_on_its_way_is_listed_over_both_transports(two_models):
    """What exporters.int8_next announces in a model's folder, /v1/models and ListModels repeat, live."""
    from model.repository import UPCOMING_FILE
    from proto import detection_pb2

    service, repository = two_models
    marker = repository / "yolov5s" / UPCOMING_FILE
    marker.write_text("building: int8, as version 2 (started 10:55:01)\n")
    try:
        models = {m["name"]: m for m in requests.get(f"{service.http_url}/v1/models", timeout=30).json()["models"]}
        assert models["yolov5s"]["upcoming"] == "building: int8, as version 2 (started 10:55:01)"
        assert "upcoming" not in models["mb3-centernet"]
        listed = _detector_stub(service).ListModels(detection_pb2.ListModelsRequest(), timeout=30)
        assert {m.name: m.upcoming for m in listed.models} == {
            "yolov5s": "building: int8, as version 2 (started 10:55:01)", "mb3-centernet": ""}
    finally:
        marker.unlink()
    models = {m["name"]: m for m in requests.get(f"{service.http_url}/v1/models", timeout=30).json()["models"]}
    assert "upcoming" not in models["yolov5s"]


def test_a_model_is_chosen_per_request_on_every_http_route(two_models, image_server, shared_dir):
    service, _ = two_models
    url = _photo_url(image_server)
    photo = (shared_dir / "eval" / "images" / DOG).read_bytes()
    by_json = requests.post(f"{service.http_url}/v1/detect", json={"url": url, "model": "mb3-centernet"}, timeout=60)
    by_form = requests.post(f"{service.http_url}/v1/detect", files={"image": photo}, data={"model": "mb3-centernet"},
                            timeout=60)
    by_query = requests.post(f"{service.http_url}/v1/detect?model=mb3-centernet", data=photo,
                             headers={"Content-Type": "image/jpeg"}, timeout=60)
    default = requests.post(f"{service.http_url}/v1/detect", json={"url": url}, timeout=60)
    for answer in (by_json, by_form, by_query):
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == {**answer.json()["model"], "name": "mb3-centernet", "version": 1}
        assert "dog" in [d["label"] for d in answer.json()["detections"]]
    assert default.json()["model"]["name"] == "yolov5s"
    batch = requests.post(f"{service.http_url}/v1/detect:batch", json={"urls": [url], "model": "mb3-centernet"},
                          timeout=60)
    assert batch.json()["results"][0]["model"]["name"] == "mb3-centernet"
    png = requests.get(f"{service.http_url}/v1/detect/annotated", params={"url": url, "model": "mb3-centernet"},
                       timeout=60)
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    assert service.predict_http(url) == (200, {"objects": [d["label"] for d in default.json()["detections"]]})


def test_an_unknown_model_is_a_404_naming_the_models(two_models, image_server):
    service, _ = two_models
    before = service.error_count("http", "model_not_found")
    answer = requests.post(f"{service.http_url}/v1/detect", json={"url": _photo_url(image_server), "model": "yolov9"},
                           timeout=60)
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert error["code"] == "model_not_found" and error["choices"] == ["mb3-centernet", "yolov5s"]
    assert service.error_count("http", "model_not_found") == before + 1
    assert service.metric("app_request_errors", model="yolov9") == 0  # a caller's name is never a label


def test_a_model_is_chosen_per_call_over_grpc(two_models, image_server):
    from proto import detection_pb2

    service, _ = two_models
    stub = _detector_stub(service)
    answer = stub.Detect(detection_pb2.DetectRequest(url=_photo_url(image_server), model="mb3-centernet"), timeout=60)
    assert (answer.model.name, answer.model.version) == ("mb3-centernet", 1)
    assert "dog" in [d.label for d in answer.detections]
    assert stub.GetModel(detection_pb2.GetModelRequest(name="mb3-centernet"), timeout=30).name == "mb3-centernet"
    assert stub.GetModel(detection_pb2.GetModelRequest(), timeout=30).name == "yolov5s"
    with pytest.raises(grpc.RpcError) as missing:
        stub.Detect(detection_pb2.DetectRequest(url=_photo_url(image_server), model="yolov9"), timeout=60)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    details = error_details(missing.value)
    assert details["reason"] == "model_not_found"
    assert details["metadata"]["choices"] == "mb3-centernet,yolov5s" and "model" in details["fields"]


def test_the_deepstack_custom_routes_with_the_real_clients(two_models, shared_dir):
    from codeprojectai.core import CodeProjectAIObject
    from deepstack.core import DeepstackObject

    service, _ = two_models
    photo = (shared_dir / "eval" / "images" / DOG).read_bytes()
    deepstack = DeepstackObject(ip="127.0.0.1", port=service.http_port, timeout=60, min_confidence=0.3,
                                custom_model="mb3-centernet")
    codeproject = CodeProjectAIObject(ip="127.0.0.1", port=service.http_port, timeout=60, min_confidence=0.3,
                                      custom_model="mb3-centernet")
    direct = requests.post(f"{service.http_url}/v1/detect", files={"image": photo},
                           data={"model": "mb3-centernet", "threshold": "0.3"}, timeout=60).json()["detections"]
    for client in (deepstack, codeproject):
        assert [p["label"] for p in client.detect(photo)] == [d["label"] for d in direct]
    listed = requests.post(f"{service.http_url}/v1/vision/custom/list", timeout=30)
    assert listed.json() == {"success": True, "models": ["mb3-centernet", "yolov5s"]}
    missing = requests.post(f"{service.http_url}/v1/vision/custom/yolov9", files={"image": photo}, timeout=60)
    assert missing.status_code == 404
    assert missing.json()["success"] is False and missing.json()["code"] == "model_not_found"


def test_deepstack_answers_at_most_20_predictions_the_best(two_models, shared_dir):
    """Frigate's plugin fails on more than 20 rows: the default cap keeps the 20 best."""
    service, _ = two_models
    photo = (shared_dir / "eval" / "images" / CROWD).read_bytes()
    everything = requests.post(f"{service.http_url}/v1/detect", files={"image": photo},
                               data={"threshold": "0.01"}, timeout=60).json()["detections"]
    assert len(everything) > 20
    capped = requests.post(f"{service.http_url}/v1/vision/detection", files={"image": photo},
                           data={"min_confidence": "0.01"}, timeout=60).json()
    assert capped["count"] == len(capped["predictions"]) == 20
    assert [p["confidence"] for p in capped["predictions"]] == [round(d["score"], 4) for d in everything[:20]]


def test_requests_are_measured_per_model(two_models, image_server):
    service, _ = two_models
    requests.post(f"{service.http_url}/v1/detect", json={"url": _photo_url(image_server), "model": "mb3-centernet"},
                  timeout=60)
    assert service.metric("app_request_duration_seconds_count", transport="http", model="mb3-centernet") >= 1
    assert service.metric("app_stage_duration_seconds_count", model="mb3-centernet", stage="inference") >= 1
    assert service.metric("app_model_versions_loaded", model="yolov5s", version="1") == service.model_processes
    assert service.metric("app_model_versions_loaded", model="mb3-centernet", version="1") == service.model_processes


def test_a_removed_model_is_unloaded_and_the_default_keeps_serving(two_models, image_server):
    service, repository = two_models
    url = _photo_url(image_server)
    shutil.rmtree(repository / "mb3-centernet")
    shutil.rmtree(repository / "yolov5s")
    wait_until(lambda: service.metric("app_model_versions_loaded", model="mb3-centernet", version="1") == 0,
               120, "mb3-centernet unloaded in every process")
    answer = requests.post(f"{service.http_url}/v1/detect", json={"url": url, "model": "mb3-centernet"}, timeout=60)
    assert answer.status_code == 404 and answer.json()["error"]["choices"] == ["yolov5s"]
    status, body = service.predict_http(url)
    assert status == 200 and "dog" in body["objects"]
    assert service.predict_grpc(url)
    [listed] = requests.get(f"{service.http_url}/v1/models", timeout=30).json()["models"]
    assert listed["name"] == "yolov5s" and listed["removed"] is True and listed["serving_version"] == 1


@pytest.fixture()
def one_model(yolov5_dir, image_server, tmp_path):
    repository = tmp_path / "models"
    add_version(repository, "yolov5s", 1, yolov5_dir)
    (tmp_path / "run").mkdir()
    service = ServiceProcess(REPO_ROOT, repository, tmp_path / "run", {"DETECTOR_REPOSITORY_POLL_SECONDS": "1"})
    service.start()
    yield service, repository
    service.stop()


class SteadyLoad:
    """One client per transport calling /predict back to back; every answer and the longest wait kept."""

    def __init__(self, service: ServiceProcess, url: str):
        self.service, self.url = service, url
        self.stop = threading.Event()
        self.answers: dict[str, list[object]] = {"http": [], "grpc": []}
        self.longest = 0.0
        self._threads = [threading.Thread(target=self._run, args=(t,)) for t in self.answers]

    def _run(self, transport: str) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                if transport == "http":
                    status, body = self.service.predict_http(self.url)
                    answer: object = body["objects"] if status == 200 else (status, body)
                else:
                    answer = self.service.predict_grpc(self.url)
            except Exception as exc:  # noqa: BLE001 - a failed call is what this counts
                answer = repr(exc)
            self.longest = max(self.longest, time.perf_counter() - started)
            self.answers[transport].append(answer)

    def __enter__(self) -> "SteadyLoad":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def failures(self) -> list[object]:
        return [a for answers in self.answers.values() for a in answers if not isinstance(a, list)]


def test_a_new_version_swaps_in_and_a_broken_one_is_refused_under_load(one_model, yolov5_dir, image_server):
    service, repository = one_model
    url = _photo_url(image_server)
    expected = service.predict_grpc(url)
    processes = service.model_processes
    with SteadyLoad(service, url) as load:
        time.sleep(2)
        add_version(repository, "yolov5s", 2, yolov5_dir)
        wait_until(lambda: service.metric("app_model_versions_loaded", model="yolov5s", version="2") == processes,
                   120, "version 2 serving in every process")
        assert service.metric("app_model_versions_loaded", model="yolov5s", version="1") == 0
        broken = add_version(repository, "yolov5s", 3, yolov5_dir)
        (broken / "model.pt").write_bytes(b"not TorchScript")
        wait_until(lambda: service.metric("app_model_load_failures", model="yolov5s") == processes,
                   120, "version 3 refused by every process")
        time.sleep(2)
    served = [a for answers in load.answers.values() for a in answers]
    assert load.failures() == [] and len(served) > 10
    assert all(answer == expected for answer in served)
    assert load.longest < 30, f"a request waited {load.longest:.1f}s"
    [listed] = requests.get(f"{service.http_url}/v1/models", timeout=30).json()["models"]
    assert listed["serving_version"] == 2
    states = {v["version"]: v for v in listed["versions"]}
    assert states[3]["state"] == "failed" and "does not match its sidecar" in states[3]["reason"]
    assert states[1]["state"] == "unloaded" and states[2]["state"] == "ready"
    assert "model yolov5s version 3 failed to load" in service.logs()
    print(f"\nswap under load: {len(served)} answers, none failed, longest wait {load.longest:.2f}s")
