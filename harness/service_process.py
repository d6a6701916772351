"""Start the real service (supervisord + gunicorn + gRPC server) on free 127.0.0.1 ports."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import grpc

from common import procfs
from harness.ports import free_ports

REPO_ROOT = Path(__file__).resolve().parent.parent


def error_details(error: grpc.RpcError) -> dict:
    """The structured details of a failed call: ErrorInfo's reason and metadata, BadRequest's fields, RetryInfo."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)
    assert status is not None, "the status carries no google.rpc.Status details"
    assert status.message == error.details()
    found: dict = {"fields": {}}
    for detail in status.details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest, error_details_pb2.RetryInfo):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                if isinstance(message, error_details_pb2.ErrorInfo):
                    found["reason"], found["metadata"] = message.reason, dict(message.metadata)
                elif isinstance(message, error_details_pb2.BadRequest):
                    found["fields"] = {v.field: v.description for v in message.field_violations}
                else:
                    found["retry_seconds"] = message.retry_delay.seconds
    return found


def peak_rss_mib(pid: int) -> float:
    """A process's peak resident memory (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmHWM for {pid}")


def model_env(path: Path) -> dict[str, str]:
    """``path`` as the service's model setting: one export (it holds model.json) or a model repository."""
    if (Path(path) / "model.json").is_file():
        return {"DETECTOR_MODEL_DIR": str(path)}
    return {"DETECTOR_MODEL_DIR": "", "DETECTOR_MODEL_REPOSITORY": str(path)}


class ServiceProcess:
    def __init__(self, repo: Path, model_dir: Path, run_dir: Path, extra_env: dict[str, str] | None = None):
        """``model_dir``: one export, or a model repository (model.repository)."""
        self.repo = repo
        self.run_dir = run_dir
        self.http_port, self.grpc_port = free_ports(2)
        self.log_path = run_dir / "supervisord.log"
        bin_dir = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "DETECTOR_RUN_DIR": str(run_dir),
            **model_env(model_dir),
            "DETECTOR_HTTP_HOST": "127.0.0.1",
            "DETECTOR_HTTP_PORT": str(self.http_port),
            "DETECTOR_GRPC_HOST": "127.0.0.1",
            "DETECTOR_GRPC_PORT": str(self.grpc_port),
            "DETECTOR_URL_ALLOWLIST": "127.0.0.1",
            "DETECTOR_FETCH_DEADLINE": "4",
            "DETECTOR_READ_TIMEOUT": "2",
            "DETECTOR_CONNECT_TIMEOUT": "2",
            **(extra_env or {}),
        }
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout: float = 180.0) -> None:
        """Launch and wait until ready; a start that fails stops whatever it started."""
        self.launch()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def launch(self) -> None:
        """Start supervisord without waiting for the programs."""
        log = open(self.log_path, "ab")  # O_APPEND: programs write through /dev/stdout too
        self._process = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.repo / "supervisord.conf")],
            cwd=self.repo, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Both transports answer and the model is warm in every process."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"supervisord exited early:\n{self.logs()}")
            if self.http_ready() and self.grpc_serving() and self.processes_ready() >= self.model_processes:
                return
            time.sleep(0.25)
        raise TimeoutError(f"service not ready after {timeout}s:\n{self.logs()}")

    def http_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/readyz", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    @property
    def model_processes(self) -> int:
        """Every gunicorn worker plus the two gRPC servers hold a model."""
        from common.settings import ServerSettings

        return ServerSettings.from_env({**os.environ, **self.env}).http_workers + 2

    def processes_ready(self) -> float:
        """How many processes report a warm model (/readyz reaches only one worker)."""
        try:
            return self.metric("app_model_processes_ready")
        except (urllib.error.URLError, OSError, AssertionError):
            return 0.0

    def grpc_serving(self) -> bool:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        try:
            with grpc.insecure_channel(self.grpc_target) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                reply = stub.Check(health_pb2.HealthCheckRequest(service="inference.InstanceDetector"), timeout=2)
                return reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False

    def supervisorctl(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(self.repo / "supervisord.conf"), *args],
            cwd=self.repo, env=self.env, capture_output=True, text=True, timeout=120,
        )
        return result.stdout + result.stderr

    def wait_running(self, timeout: float = 60.0) -> str:
        """supervisorctl's status once every program is RUNNING (past its startsecs)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.supervisorctl("status")
            lines = status.strip().splitlines()
            if lines and all(" RUNNING " in line for line in lines) or time.monotonic() > deadline:
                return status
            time.sleep(1.0)

    def program_pid(self, program: str) -> int:
        return int(self.supervisorctl("pid", program).strip())

    def grpc_server_pid(self, program: str) -> int:
        """The gRPC server a ``grpc`` program stands in for: the fork server's child writing to the program's own output.

        Without a fork server (grpc_service/forkserver.py), the program is its server.
        """
        program_pid = self.program_pid(program)
        output = os.readlink(f"/proc/{program_pid}/fd/2")
        servers = [pid for pid in procfs.children(self.program_pid("grpc-forkserver"))
                   if os.readlink(f"/proc/{pid}/fd/2") == output]
        if len(servers) > 1:
            raise AssertionError(f"{program}: more than one server: {servers}")
        return servers[0] if servers else program_pid

    def http_worker_pids(self) -> list[int]:
        """The gunicorn workers: children of the ``http`` program's master."""
        return procfs.children(self.program_pid("http"))

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def supervisord_pid(self) -> int:
        """supervisord's pid, which is also its session's id: every program stays in that session."""
        assert self._process is not None, "not launched"
        return self._process.pid

    def shutdown(self, timeout: float = 60.0) -> float:
        """What ``make stop`` does: ``supervisorctl shutdown``, then wait for supervisord to exit; seconds taken."""
        start = time.monotonic()
        self.supervisorctl("shutdown")
        assert self._process is not None, "not launched"
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        return time.monotonic() - start

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()

    # Clients -------------------------------------------------------------------------------

    def post(self, path: str, body: bytes, content_type: str = "application/json", timeout: float = 60):
        """(status, parsed JSON body) of a POST; HTTP errors are returned, not raised."""
        request = urllib.request.Request(
            f"{self.http_url}{path}", data=body, method="POST", headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def predict_http(self, url: object) -> tuple[int, dict]:
        return self.post("/predict", json.dumps({"url": url}).encode())

    def predict_grpc(self, url: str, timeout: float = 60) -> list[str]:
        from proto import inference_pb2, inference_pb2_grpc

        with grpc.insecure_channel(self.grpc_target) as channel:
            stub = inference_pb2_grpc.InstanceDetectorStub(channel)
            return list(stub.Predict(inference_pb2.InstanceDetectorInput(url=url), timeout=timeout).objects)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"{self.http_url}{path}", timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def metric(self, name: str = "app_http_inference_count", **labels: str) -> float:
        """The sum of the samples named ``name`` (or ``name_total``; a histogram's ``x_count`` too) whose labels
        include ``labels``.

        A series nothing has written yet is absent from /metrics, and reads as 0.
        """
        from prometheus_client.parser import text_string_to_metric_families

        status, text = self.get("/metrics")
        assert status == 200
        return sum(sample.value for family in text_string_to_metric_families(text)
                   for sample in family.samples if sample.name in (name, f"{name}_total")
                   and labels.items() <= sample.labels.items())

    def error_count(self, transport: str, code: str) -> float:
        """``app_request_errors_total{transport, code}``."""
        return self.metric("app_request_errors", transport=transport, code=code)


def add_version(repository: Path, name: str, version: int | str, export: Path) -> Path:
    """A copy of ``export`` as ``<name>/<version>/``, made aside and renamed into place as documented."""
    staging = repository / f".staging-{name}-{version}"
    shutil.copytree(export, staging)
    (repository / name).mkdir(parents=True, exist_ok=True)
    target = repository / name / str(version)
    os.rename(staging, target)
    return target


def service_processes(run_dir: Path, session: int) -> list[int]:
    """Processes started for this service: in supervisord's session, or with DETECTOR_RUN_DIR=<run_dir>.

    Programs run in process groups of their own but stay in supervisord's session, orphans
    included; nginx rewrites the memory its environment was in, so the session finds it.
    """
    marker = f"DETECTOR_RUN_DIR={run_dir}".encode()
    found = []
    for process in procfs.processes():
        try:
            if process.session == session or marker in (procfs.PROC / str(process.pid) / "environ").read_bytes().split(b"\0"):
                found.append(process.pid)
        except OSError:
            continue
    return [pid for pid in found if pid != os.getpid()]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def served(model_dir: Path, env: dict[str, str]) -> Iterator:
    """The real service on free 127.0.0.1 ports, as the integration tests start it."""
    with tempfile.TemporaryDirectory(prefix="bench-run-") as run_dir:
        service = ServiceProcess(REPO_ROOT, model_dir.resolve(), Path(run_dir), env)
        service.start()
        try:
            yield service
        finally:
            service.stop()
