"""The deployment files: compose, Prometheus's configuration and rules, and Prometheus scraping the real service."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from harness.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: `make tools` installs it (Debian's docker-compose and prometheus)")
    return path


def _run(*args: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_compose_file_is_valid_and_mounts_the_rules():
    config = _run(_tool("docker-compose"), "config")
    assert "prom/prometheus" in config and "deploy/prometheus:/etc/prometheus" in config
    assert "published: 8080" in config and "published: 9090" in config


def test_the_prometheus_configuration_and_rules_check():
    promtool = _tool("promtool")
    assert "SUCCESS" in _run(promtool, "check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert "SUCCESS: 9 rules found" in _run(promtool, "check", "rules", str(PROMETHEUS_DIR / "rules.yml"))


def test_the_rules_fire_as_their_unit_tests_say():
    assert "SUCCESS" in _run(_tool("promtool"), "test", "rules", str(PROMETHEUS_DIR / "rules.test.yml"))


def _query(base: str, expression: str) -> float | None:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    with urllib.request.urlopen(url, timeout=10) as response:
        result = json.loads(response.read())["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _wait_for(base: str, expression: str, predicate, timeout: float = 60.0) -> float | None:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        try:
            value = _query(base, expression)
        except OSError:
            value = None
        if predicate(value):
            return value
        time.sleep(0.5)
    return value


def test_prometheus_reads_back_exactly_the_predicts_sent(service, image_server):
    """Debian's prometheus scrapes the running service on 127.0.0.1 every second; N predicts show as N."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="prometheus-") as workdir:
        config = Path(workdir) / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: [{PROMETHEUS_DIR / 'rules.yml'}]\n"
            "scrape_configs:\n"
            "  - job_name: instance-detector\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{service.http_port}']}}]\n"
        )
        process = subprocess.Popen(
            [_tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={workdir}/data",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            metric = 'app_http_inference_count_total{job="instance-detector"}'
            before = _wait_for(base, metric, lambda v: v is not None)
            assert before is not None, "Prometheus never scraped the service"
            sent = 5
            for _ in range(sent):
                assert service.predict_http(image_server.url("/images/darknet_dog.jpg"))[0] == 200
            after = _wait_for(base, metric, lambda v: v is not None and v >= before + sent)
            assert after == before + sent
            assert _wait_for(base, 'up{job="instance-detector"}', lambda v: v == 1.0) == 1.0
            ready = _wait_for(base, "app_model_processes_ready", lambda v: v is not None)
            assert ready == service.model_processes
        finally:
            process.terminate()
            process.wait(timeout=30)


KUBERNETES_DIR = REPO_ROOT / "deploy" / "kubernetes"


def _manifests() -> list[Path]:
    return sorted(path for path in KUBERNETES_DIR.glob("*.yaml") if path.name != "kustomization.yaml")


def test_the_kustomization_lists_every_manifest():
    import yaml

    kustomization = yaml.safe_load((KUBERNETES_DIR / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [path.name for path in _manifests()]


@pytest.mark.parametrize("version", ["1.30.0", "latest"])
def test_the_kubernetes_manifests_validate_strictly(version):
    from kubernetes_validate.utils import latest_version

    version = latest_version() if version == "latest" else version
    validator = Path(sys.executable).parent / "kubernetes-validate"  # installed beside pytest (requirements-dev)
    output = _run(str(validator), "--strict", "-k", version, *map(str, _manifests()))
    resources = {"deployment/instance-detector", "service/instance-detector", "service/instance-detector-grpc",
                 "horizontalpodautoscaler/instance-detector", "poddisruptionbudget/instance-detector"}
    for resource in resources:
        assert f"passed for resource {resource} against version {version.rsplit('.', 1)[0]}" in output, output


def test_the_deployment_runs_unprivileged_on_a_read_only_root_with_probes_for_both_transports():
    import yaml

    deployment = yaml.safe_load((KUBERNETES_DIR / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/app/run", "/tmp"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["grpc"]["port"] == 9090
    assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] >= 300


def test_a_rolling_update_keeps_every_replica_and_drains_the_old_pod():
    """maxUnavailable 0, a preStop pause, and a grace period longer than the pause plus supervisord's stop."""
    import configparser

    import yaml

    deployment = yaml.safe_load((KUBERNETES_DIR / "deployment.yaml").read_text())
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pause = int(command[1])
    supervisord = configparser.RawConfigParser()
    supervisord.read(REPO_ROOT / "supervisord.conf")
    waits: dict[int, int] = {}
    for section in supervisord.sections():
        if section.startswith("program:"):
            priority = supervisord.getint(section, "priority", fallback=999)
            waits[priority] = max(waits.get(priority, 0), supervisord.getint(section, "stopwaitsecs"))
    # supervisord stops one priority level after the other, the programs of a level together.
    assert pod["terminationGracePeriodSeconds"] >= pause + sum(waits.values())
