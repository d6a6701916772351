"""The contract, end to end: supervisord, gunicorn (2 workers, the default), the gRPC servers, real sockets."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from prometheus_client import multiprocess
from prometheus_client.parser import text_string_to_metric_families

from common import procfs
from exporters.coco_names import COCO_80

IMAGES = ["darknet_dog.jpg", "darknet_person.jpg", "darknet_giraffe.jpg", "darknet_eagle.jpg", "chelsea.png"]


def test_predict_returns_exactly_the_contract_shape(service, image_server):
    status, body = service.predict_http(image_server.url("/images/darknet_dog.jpg"))
    assert status == 200
    assert list(body) == ["objects"]
    assert body["objects"] and all(name in COCO_80 for name in body["objects"])
    assert "dog" in body["objects"] and "bicycle" in body["objects"]


def test_http_and_grpc_give_the_same_objects(service, image_server):
    for name in IMAGES:
        url = image_server.url(f"/images/{name}")
        status, body = service.predict_http(url)
        assert status == 200
        assert service.predict_grpc(url) == body["objects"], name


def test_every_model_process_reports_ready(service):
    assert service.metric("app_model_processes_ready") == service.model_processes == 4  # 2 workers, 2 gRPC servers


def test_counter_is_parsed_as_the_contract_says(service):
    _, text = service.get("/metrics")
    assert "app_http_inference_count_total " in text
    families = [f for f in text_string_to_metric_families(text) if f.name == "app_http_inference_count"]
    assert len(families) == 1 and families[0].type == "counter"
    assert families[0].samples[0].name == "app_http_inference_count_total"
    assert not families[0].samples[0].labels


def test_counter_rises_by_one_per_predict_across_both_workers(service, image_server):
    before = service.metric()
    urls = [image_server.url(f"/images/{IMAGES[i % len(IMAGES)]}") for i in range(24)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = [status for status, _ in pool.map(service.predict_http, urls)]
    assert statuses == [200] * len(urls)
    assert service.metric() == before + len(urls)
    per_worker = _http_counter_by_pid(Path(service.run_dir) / "metrics" / "http")
    assert len([pid for pid, value in per_worker.items() if value > 0]) >= 2, per_worker


def _http_counter_by_pid(directory: Path) -> dict[str, float]:
    """Each gunicorn worker writes counter_<pid>.db; read them one by one."""
    values = {}
    for path in directory.glob("counter_*.db"):
        for family in multiprocess.MultiProcessCollector.merge([str(path)], accumulate=False):
            if family.name == "app_http_inference_count":
                values[path.stem] = sum(s.value for s in family.samples if s.name.endswith("_total"))
    return values


def test_failed_calls_count_too_and_scrapes_do_not(service):
    before = service.metric()
    assert service.post("/predict", b"not json")[0] == 400
    assert service.predict_http(42)[0] == 400
    assert service.metric() == before + 2
    for _ in range(5):
        assert service.metric() == before + 2


def test_grpc_calls_are_counted_in_the_same_scrape(service, image_server):
    before = service.metric("app_grpc_inference_count")
    service.predict_grpc(image_server.url("/images/darknet_eagle.jpg"))
    assert service.metric("app_grpc_inference_count") == before + 1


def test_health_and_readiness(service):
    status, body = service.get("/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, body = service.get("/readyz")
    assert status == 200 and json.loads(body) == {"status": "ready"}
    assert service.grpc_serving()


def test_grpc_reflection_lists_the_service(service):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(service.grpc_target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        reply = next(stub.ServerReflectionInfo(iter([request]), timeout=10))
    names = {s.name for s in reply.list_services_response.service}
    assert {"inference.InstanceDetector", "grpc.health.v1.Health"} <= names


def test_model_info_metric_names_the_served_model(service):
    _, text = service.get("/metrics")
    info = [f for f in text_string_to_metric_families(text) if f.name == "app_model_info"][0]
    assert {s.labels["model"] for s in info.samples} == {"yolov5s"}


PROGRAMS = ("listeners", "grpc-forkserver", "front", "http", "grpc", "grpc2")


def test_ps_names_gunicorns_master_and_workers(service):
    """An operator finds them by name in ps and top (setproctitle, which gunicorn uses when installed)."""
    master = service.program_pid("http")
    assert Path(f"/proc/{master}/cmdline").read_bytes().startswith(b"gunicorn: master [detector-http]")
    workers = procfs.children(master)
    assert len(workers) == 2
    for worker in workers:
        assert Path(f"/proc/{worker}/cmdline").read_bytes().startswith(b"gunicorn: worker [detector-http]")


def test_each_grpc_server_answers_its_readiness_check_on_its_own_socket(service):
    """make reload waits on these between the two gRPC restarts; a name with no server times out."""
    for name, expected in (("grpc", 0), ("grpc2", 0), ("grpc3", 1)):
        result = subprocess.run([sys.executable, "-m", "grpc_service.readiness", name, "--timeout", "3"],
                                env=service.env, capture_output=True, text=True, timeout=60)
        assert result.returncode == expected, (name, result.stdout, result.stderr)


@pytest.mark.parametrize("program", ["http", "grpc", "front"])
def test_supervisorctl_restart_brings_the_program_back(service, image_server, program):
    assert service.wait_running().count("RUNNING") == len(PROGRAMS)
    output = service.supervisorctl("restart", program)
    assert f"{program}: started" in output, output
    service.wait_ready(timeout=120)
    url = image_server.url("/images/darknet_giraffe.jpg")
    status, body = service.predict_http(url)
    assert status == 200 and "giraffe" in body["objects"]
    assert service.predict_grpc(url) == body["objects"]
    status_lines = service.wait_running()
    assert status_lines.count("RUNNING") == len(PROGRAMS), status_lines
