"""The inference protocol's model repository and statistics extensions, in the real service.

The repository holds yolov5s (the default) and a copy of it named ``spare``. Its poll interval is
an hour, so when an unload taken by the HTTP worker reaches the gRPC processes within seconds,
the repository's change file did it, not a rescan.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import grpc
import pytest
import requests

from harness.polling import wait_until
from harness.service_process import ServiceProcess, add_version
from tests.conftest import REPO_ROOT

TOKEN = "operator-token-for-tests"
CLIENTS_PYTHON = REPO_ROOT / ".venv-clients" / "bin" / "python"
DOG = "darknet_dog.jpg"


@pytest.fixture(scope="module")
def service(yolov5_dir, tmp_path_factory):
    repository = tmp_path_factory.mktemp("models")
    add_version(repository, "yolov5s", 1, yolov5_dir)
    add_version(repository, "spare", 1, yolov5_dir)
    served = ServiceProcess(REPO_ROOT, repository, tmp_path_factory.mktemp("run"), {
        "DETECTOR_REPOSITORY_POLL_SECONDS": "3600", "DETECTOR_ADMIN_TOKEN": TOKEN,
        "DETECTOR_DEFAULT_MODEL": "yolov5s"})
    served.start()
    yield served
    served.stop()


def _stub(service: ServiceProcess):
    from proto import grpc_inference_pb2_grpc

    return grpc_inference_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(service.grpc_target))


def _post(service: ServiceProcess, path: str, body: dict | None = None, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.post(f"{service.http_url}{path}", json=body, headers=headers, timeout=300)


def _grpc_ready(service: ServiceProcess, name: str) -> bool:
    from proto import grpc_inference_pb2 as pb

    return _stub(service).ModelReady(pb.ModelReadyRequest(name=name), timeout=10).ready


def test_the_index_lists_every_version_and_its_state_over_both_transports(service):
    from proto import grpc_inference_pb2 as pb

    answer = _post(service, "/v2/repository/index")
    assert answer.status_code == 200
    assert answer.json() == [{"name": "spare", "version": "1", "state": "READY", "reason": ""},
                             {"name": "yolov5s", "version": "1", "state": "READY", "reason": ""}]
    assert _post(service, "/v2/repository/index", {"ready": True}).json() == answer.json()
    over_grpc = _stub(service).RepositoryIndex(pb.RepositoryIndexRequest(ready=True), timeout=10)
    assert [(m.name, m.version, m.state) for m in over_grpc.models] == [("spare", "1", "READY"),
                                                                     ("yolov5s", "1", "READY")]
    assert _serving(service, "spare") == _serving(service, "yolov5s") == service.model_processes
    refused = _post(service, "/v2/repository/index", {"ready": "yes"})
    assert refused.status_code == 400 and "boolean" in refused.json()["error"]


@pytest.mark.parametrize("token", [None, "", "wrong-token", TOKEN[:-1]])
def test_load_and_unload_without_the_operators_token_are_403_and_counted(service, token):
    from proto import grpc_inference_pb2 as pb

    before = service.error_count("v2-http", "forbidden")
    for action in ("load", "unload"):
        refused = _post(service, f"/v2/repository/models/spare/{action}", token=token)
        assert refused.status_code == 403, refused.text
        assert "DETECTOR_ADMIN_TOKEN" in refused.json()["error"] and "Bearer" in refused.json()["error"]
    assert service.error_count("v2-http", "forbidden") == before + 2
    metadata = [("authorization", f"Bearer {token}")] if token else []
    with pytest.raises(grpc.RpcError) as refused:
        _stub(service).RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="spare"), metadata=metadata,
                                             timeout=10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert _grpc_ready(service, "spare")


def test_unload_reaches_every_process_and_load_brings_the_model_back(service, image_server):
    from proto import grpc_inference_pb2 as pb

    assert _post(service, "/v2/repository/models/spare/unload", {"parameters": {"unload_dependents": False}},
                 token=TOKEN).status_code == 200
    # One HTTP worker took the call; the other and the gRPC processes follow through the change file,
    # not an hourly rescan.
    wait_until(lambda: not _grpc_ready(service, "spare"), 5, "gRPC says spare is not ready")
    wait_until(lambda: _serving(service, "spare") == 0, 5, "no process serves spare")

    def gone() -> bool:
        answer = requests.post(f"{service.http_url}/v1/detect", json={"url": image_server.url(f"/images/{DOG}"),
                                                                      "model": "spare"}, timeout=60)
        return answer.status_code == 404 and answer.json()["error"]["code"] == "model_not_found"

    # Both workers: a few calls in a row, all refused.
    wait_until(lambda: all(gone() for _ in range(4)), 5, "HTTP refuses spare as model_not_found")
    assert _post(service, "/v2/repository/index").json()[0] == {
        "name": "spare", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded by an operator"}
    assert (service_repository(service) / "spare" / ".unloaded").is_file()

    _stub(service).RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="spare"),
                                       metadata=[("authorization", f"Bearer {TOKEN}")], timeout=300)
    wait_until(lambda: requests.get(f"{service.http_url}/v2/models/spare/ready", timeout=10).status_code == 200,
               120, "HTTP says spare is ready")
    # The process that took the load serves at once; the others load on their change-file check.
    # Later tests ask any of them (the statistics list ``spare``), so wait until every one serves it.
    wait_until(lambda: _serving(service, "spare") == service.model_processes, 120, "every process serves spare")
    assert service.predict_grpc(image_server.url(f"/images/{DOG}"))  # /predict never stopped meanwhile


def _serving(service: ServiceProcess, name: str) -> float:
    """How many serving processes (HTTP workers, gRPC servers) have version 1 of ``name`` loaded."""
    return service.metric("app_model_versions_loaded", model=name, version="1")


def service_repository(service: ServiceProcess) -> Path:
    return Path(service.env["DETECTOR_MODEL_REPOSITORY"])


def test_the_default_model_cannot_be_unloaded_and_load_takes_no_config(service):
    from proto import grpc_inference_pb2 as pb

    refused = _post(service, "/v2/repository/models/yolov5s/unload", token=TOKEN)
    assert refused.status_code == 409 and "DETECTOR_DEFAULT_MODEL" in refused.json()["error"]
    with pytest.raises(grpc.RpcError) as over_grpc:
        _stub(service).RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="yolov5s"),
                                             metadata=[("authorization", f"Bearer {TOKEN}")], timeout=10)
    assert over_grpc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    unknown = _post(service, "/v2/repository/models/nope/load", token=TOKEN)
    assert unknown.status_code == 404 and "spare" in unknown.json()["error"]
    config = _post(service, "/v2/repository/models/spare/load", {"parameters": {"config": "{}"}}, token=TOKEN)
    assert config.status_code == 400 and "config" in config.json()["error"]
    assert _post(service, "/v2/repository/models/spare/load", token=TOKEN).status_code == 200  # loaded: a no-op


def _stats(service: ServiceProcess, path: str = "/v2/models/yolov5s/stats") -> dict:
    answer = requests.get(f"{service.http_url}{path}", timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_statistics_count_every_process_and_match_over_both_transports(service, image_server):
    from proto import grpc_inference_pb2 as pb

    url = image_server.url(f"/images/{DOG}")
    before = _stats(service)["model_stats"][0]
    assert service.predict_http(url)[0] == 200                                     # the gunicorn worker
    assert service.predict_grpc(url) and service.predict_grpc(url)                 # the gRPC processes
    bad = requests.post(f"{service.http_url}/v1/detect", json={"url": image_server.url("/missing.jpg")}, timeout=60)
    assert bad.status_code >= 400
    after = _stats(service)["model_stats"][0]
    assert (after["name"], after["version"]) == ("yolov5s", "1")
    assert after["inference_count"] == before["inference_count"] + 3 == after["execution_count"]
    assert after["inference_stats"]["success"]["count"] == before["inference_stats"]["success"]["count"] + 3
    assert after["inference_stats"]["fail"]["count"] == before["inference_stats"]["fail"]["count"] + 1
    for stage in ("success", "queue", "compute_input", "compute_infer"):
        assert after["inference_stats"][stage]["ns"] > before["inference_stats"][stage]["ns"], stage
    # The model's own time is most of a success and fits inside it.
    spent = {k: after["inference_stats"][k]["ns"] - before["inference_stats"][k]["ns"] for k in after["inference_stats"]}
    assert 0 < spent["compute_infer"] < spent["success"]
    assert after["last_inference"] >= time.time() * 1000 - 60_000

    over_grpc = _stub(service).ModelStatistics(pb.ModelStatisticsRequest(name="yolov5s", version="1"), timeout=10)
    same = over_grpc.model_stats[0]
    assert same.inference_count == after["inference_count"]
    assert same.inference_stats.compute_infer.ns == after["inference_stats"]["compute_infer"]["ns"]
    everything = _stats(service, "/v2/models/stats")["model_stats"]
    assert [(m["name"], m["version"]) for m in everything] == [("spare", "1"), ("yolov5s", "1")]


@pytest.mark.parametrize("path", ["/v2/models/nope/stats", "/v2/models/yolov5s/versions/7/stats",
                                  "/v2/models/yolov5s/versions/01/stats"])
def test_statistics_of_unknown_models_and_versions_are_404(service, path):
    answer = requests.get(f"{service.http_url}{path}", timeout=30)
    assert answer.status_code == 404 and answer.json()["error"]


def test_tritonclients_repository_calls_unload_and_load_across_processes(service, shared_dir, image_server):
    if not CLIENTS_PYTHON.is_file():
        pytest.fail(f"{CLIENTS_PYTHON} is missing: make clients (make test makes it)")
    result = subprocess.run(
        [str(CLIENTS_PYTHON), str(REPO_ROOT / "harness" / "oip_clients.py"), "--clients", "repository",
         "--http", service.http_url.removeprefix("http://"), "--grpc", service.grpc_target, "--model", "yolov5s",
         "--image", str(shared_dir / "eval" / "images" / DOG), "--url", image_server.url(f"/images/{DOG}"),
         "--spare", "spare", "--token", TOKEN],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    calls = {line["call"]: line for line in map(json.loads, result.stdout.splitlines())}
    assert [c for c, line in calls.items() if "error" in line] == [], result.stdout[-3000:]
    assert calls["unload"]["result"] == "ok" and calls["load"]["result"] == "ok"
    assert calls["follows unload"]["result"] < 5
    assert calls["index after unload"]["result"] == [
        {"name": "spare", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded by an operator"}]
    assert calls["follows load"]["result"] < 120
    assert calls["index after load"]["result"] == [{"name": "spare", "version": "1", "state": "READY"}]
