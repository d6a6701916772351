"""The Docker image, run for real and checked from outside (``make docker-test`` builds it and sets
DETECTOR_DOCKER_IMAGE; without it these tests are skipped).

The container shares the host's network with the service bound to 127.0.0.1 on free ports, so it
fetches the test's photos from the host's loopback and nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from harness.image_server import serve_folder
from harness.predictors import evaluate, grpc_predictor, http_predictor, mean_score
from harness.steady_load import MAX_KILL_FAILURES, SteadyLoad
from harness.ports import free_ports
from harness.service_process import ServiceProcess

IMAGE = os.environ.get("DETECTOR_DOCKER_IMAGE", "")
# The acceptance test's pass mark, over both transports.
PASS_MARK = 0.5
STOP_GRACE_SECONDS = 45

pytestmark = pytest.mark.skipif(not IMAGE, reason="set DETECTOR_DOCKER_IMAGE (make docker-test builds the image)")


def docker(*args: str, timeout: float = 120) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


class Container(ServiceProcess):
    """The service inside the container, reached with the same clients as the local one."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.http_port, self.grpc_port = free_ports(2)
        self.env = {"DETECTOR_HTTP_WORKERS": "1"}
        self._process = None

    def run(self, *extra: str) -> None:
        docker(
            "run", "--detach", "--name", self.name, "--network", "host", *extra,
            "--stop-timeout", str(STOP_GRACE_SECONDS),
            "-e", "DETECTOR_HTTP_HOST=127.0.0.1", "-e", f"DETECTOR_HTTP_PORT={self.http_port}",
            "-e", "DETECTOR_GRPC_HOST=127.0.0.1", "-e", f"DETECTOR_GRPC_PORT={self.grpc_port}",
            "-e", "DETECTOR_URL_ALLOWLIST=127.0.0.1",
            IMAGE,
        )

    def health(self) -> str:
        return docker("inspect", "--format", "{{.State.Health.Status}}", self.name)

    def wait_healthy(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while (status := self.health()) != "healthy":
            assert status in ("starting", "healthy"), f"{status}:\n{self.logs()}"
            assert time.monotonic() < deadline, f"not healthy after {timeout}s:\n{self.logs()}"
            time.sleep(2)

    def supervisorctl(self, *args: str) -> str:
        result = subprocess.run(["docker", "exec", self.name, "supervisorctl", "-c", "/app/supervisord.conf", *args],
                                capture_output=True, text=True, timeout=60)
        return result.stdout + result.stderr

    def logs(self) -> str:
        result = subprocess.run(["docker", "logs", self.name], capture_output=True, text=True, timeout=60)
        return result.stdout + result.stderr


@pytest.fixture(scope="module")
def container():
    box = Container(f"instance-detector-test-{os.getpid()}")
    box.run()
    try:
        box.wait_healthy()
        box.wait_ready(timeout=60)
        yield box
    finally:
        subprocess.run(["docker", "rm", "--force", box.name], capture_output=True, timeout=120)


def test_predict_answers_the_contract_on_a_photo_served_by_the_host(container, image_server):
    status, body = container.predict_http(image_server.url("/images/darknet_dog.jpg"))
    assert status == 200 and list(body) == ["objects"]
    assert "dog" in body["objects"]


def test_the_counter_rises_by_exactly_one_per_predict(container, image_server):
    before = container.metric()
    for _ in range(3):
        container.predict_http(image_server.url("/images/darknet_dog.jpg"))
    assert container.metric() == before + 3


def test_grpc_predict_gives_the_same_objects(container, image_server):
    url = image_server.url("/images/darknet_giraffe.jpg")
    status, body = container.predict_http(url)
    assert status == 200 and container.predict_grpc(url) == body["objects"]


def test_the_acceptance_score_clears_the_pass_mark_over_both_transports(container, shared_dir):
    labels = json.loads((shared_dir / "eval" / "labels.json").read_text())
    with serve_folder(shared_dir / "eval" / "images") as base:
        over_http = mean_score(evaluate(http_predictor(container.http_url), base, labels))
        over_grpc = mean_score(evaluate(grpc_predictor(container.grpc_target), base, labels))
    print(f"acceptance score in the container: HTTP {over_http:.3f}, gRPC {over_grpc:.3f}")
    assert over_http > PASS_MARK and over_grpc > PASS_MARK


def test_every_process_runs_as_the_unprivileged_user(container):
    owners = docker("exec", container.name, "sh", "-c", "for p in /proc/[0-9]*; do stat -c '%u %n' $p; done")
    uids = {line.split()[0] for line in owners.splitlines()}
    assert uids == {"10001"}, owners


def test_supervisorctl_shows_every_program_running(container):
    status = container.wait_running()
    assert [line.split()[:2] for line in status.strip().splitlines()] == [
        ["front", "RUNNING"], ["grpc", "RUNNING"], ["grpc-forkserver", "RUNNING"], ["grpc2", "RUNNING"], ["http", "RUNNING"],
        ["listeners", "RUNNING"]], status


def test_restarts_and_a_kill_inside_the_container_fail_no_request(container, image_server):
    """docs/operations.md's promises with supervisord as PID 1: `docker exec <container> supervisorctl restart`."""
    assert "supervisord" in docker("exec", container.name, "cat", "/proc/1/cmdline")
    load = SteadyLoad(container.http_url, container.grpc_target, image_server.url("/images/darknet_dog.jpg"))
    load.start()
    phases: list[tuple[float, str]] = []
    try:
        time.sleep(2)
        for program in ("http", "grpc", "front"):
            phases.append((time.monotonic(), f"restart {program}"))
            assert f"{program}: started" in container.supervisorctl("restart", program)
        # As docs/operations.md has operators do: the restarted grpc serves before grpc2 goes.
        docker("exec", container.name, "python", "-m", "grpc_service.readiness", "grpc", "--timeout", "60", timeout=90)
        kill_start = time.monotonic()
        docker("exec", container.name, "sh", "-c", f"kill -9 {int(container.supervisorctl('pid', 'grpc2'))}")
        assert container.wait_running(timeout=60).count("RUNNING") == 6
        time.sleep(2)
    finally:
        died = load.stop()
    assert died == 0, "a client died; its calls are missing from the counts"
    # A call fails when it ends: one in flight on grpc2 as it is killed belongs to the kill.
    restarts = [c for c in load.calls if c.end < kill_start]
    after_kill = [c for c in load.calls if c.end >= kill_start]
    assert {c.transport for c in restarts if c.ok} == {"http", "grpc"}
    failed = [(c, ([name for start, name in phases if start <= c.end] or ["before"])[-1]) for c in restarts if not c.ok]
    assert failed == [], (failed, container.logs()[-4000:])
    for transport in ("http", "grpc"):
        lost = [c for c in after_kill if c.transport == transport and not c.ok]
        assert len(lost) <= MAX_KILL_FAILURES, (transport, len(lost), [c.error for c in lost[:5]], container.logs()[-4000:])


def test_the_image_runs_on_a_read_only_root_filesystem(image_server):
    """As deploy/kubernetes runs it: read-only root, writable run directory and /tmp only."""
    box = Container(f"instance-detector-readonly-{os.getpid()}")
    box.run("--read-only", "--tmpfs", "/app/run:uid=10001,gid=10001", "--tmpfs", "/tmp", "-e", "HOME=/tmp")
    try:
        box.wait_healthy()
        status, body = box.predict_http(image_server.url("/images/darknet_dog.jpg"))
        assert status == 200 and "dog" in body["objects"], box.logs()[-2000:]
    finally:
        subprocess.run(["docker", "rm", "--force", box.name], capture_output=True, timeout=120)


def test_docker_stop_ends_every_program_cleanly_within_the_grace_period(container):
    started = time.monotonic()
    docker("stop", container.name, timeout=STOP_GRACE_SECONDS + 30)
    elapsed = time.monotonic() - started
    state = json.loads(docker("inspect", "--format", "{{json .State}}", container.name))
    logs = container.logs()
    assert elapsed < STOP_GRACE_SECONDS and state["ExitCode"] == 0, (elapsed, state, logs[-2000:])
    for program in ("listeners", "front", "http", "grpc", "grpc2", "grpc-forkserver"):
        assert f"stopped: {program} (exit status 0)" in logs, logs[-2000:]
