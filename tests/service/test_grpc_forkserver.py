"""The gRPC servers are forked from one interpreter that imported torch (grpc_service/forkserver.py).

They share that import, and each still behaves, to supervisord and to an operator, as the
gRPC program it was forked for: killed with it, stopped through it, restarted with it; and
restarting the fork server leaves them serving.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from common import procfs
from grpc_service.forked import serve_forked
from common.settings import ServerSettings
from harness.polling import wait_until
from harness.service_process import ServiceProcess
from tests.conftest import REPO_ROOT

SHARED_IMPORT_MIB = 64  # cuBLASLt's static data alone is 81 MiB, written as torch loads


def test_both_grpc_servers_are_forked_from_one_interpreter_and_share_its_torch(service, image_server):
    servers = [service.grpc_server_pid(program) for program in ("grpc", "grpc2")]
    for program, server in zip(("grpc", "grpc2"), servers):
        assert server != service.program_pid(program)
        assert procfs.stat(server).pgrp == server, "a server runs in its own group: the fork server's restart spares it"
        assert procfs.smaps_rollup(server)["Shared_Dirty"] / 1024 >= SHARED_IMPORT_MIB
        assert "libtorch" in Path(f"/proc/{server}/maps").read_text()
        assert "libtorch" not in Path(f"/proc/{service.program_pid(program)}/maps").read_text()
        title = f"grpc_service server (forked for {program}, pid {service.program_pid(program)})"
        assert Path(f"/proc/{server}/cmdline").read_bytes().startswith(title.encode()), "ps names the program a server serves"
    assert "dog" in service.predict_grpc(image_server.url("/images/darknet_dog.jpg"))


@pytest.fixture(scope="module")
def own_service(yolov5_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A service of its own: these tests kill and restart its programs."""
    process = ServiceProcess(REPO_ROOT, yolov5_dir, tmp_path_factory.mktemp("forks"))
    process.start()
    yield process
    process.stop()


def test_a_grpc_program_killed_outright_takes_its_server_with_it_and_comes_back(own_service, image_server):
    url = image_server.url("/images/darknet_dog.jpg")
    program, server = own_service.program_pid("grpc"), own_service.grpc_server_pid("grpc")
    os.kill(program, signal.SIGKILL)
    wait_until(lambda: not procfs.running(server), 5, f"server {server} outlived its program {program}")
    wait_until(lambda: own_service.grpc_serving() and " RUNNING " in own_service.supervisorctl("status", "grpc")
               and own_service.program_pid("grpc") != program, 60, "grpc did not come back")
    assert own_service.grpc_server_pid("grpc") != server
    assert "dog" in own_service.predict_grpc(url)


def test_restarting_the_fork_server_spares_the_servers_and_the_next_server_comes_from_the_new_one(own_service, image_server):
    url = image_server.url("/images/darknet_dog.jpg")
    servers = {program: own_service.grpc_server_pid(program) for program in ("grpc", "grpc2")}
    old = own_service.program_pid("grpc-forkserver")
    assert "started" in own_service.supervisorctl("restart", "grpc-forkserver")
    assert own_service.program_pid("grpc-forkserver") != old
    assert all(procfs.running(pid) for pid in servers.values())
    assert "dog" in own_service.predict_grpc(url)
    # The orphaned servers still answer to their programs: a restart stops the old and forks anew.
    assert "started" in own_service.supervisorctl("restart", "grpc2")
    # A zombie counts as gone: a server whose fork server restarted is reparented to init, which may reap it late.
    wait_until(lambda: not procfs.running(servers["grpc2"]), 5, "the old grpc2 server outlived its restart")
    assert procfs.stat(own_service.grpc_server_pid("grpc2")).ppid == own_service.program_pid("grpc-forkserver")
    assert "exited" not in own_service.supervisorctl("status")
    assert "dog" in own_service.predict_grpc(url)


@pytest.fixture
def lone_forkserver(tmp_path: Path):
    """The fork server alone (no model, no supervisord), as a program would find it."""
    env = {**os.environ, "DETECTOR_RUN_DIR": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-m", "grpc_service.forkserver"], cwd=REPO_ROOT, env=env)
    path = ServerSettings(run_dir=tmp_path).grpc_forkserver_socket
    wait_until(path.exists, 30, "the fork server did not bind")
    yield path
    process.terminate()
    assert process.wait(timeout=10) == 0
    assert not path.exists()


def test_a_program_whose_import_time_settings_differ_is_refused_and_serves_alone(lone_forkserver, monkeypatch, capfd):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert serve_forked(lone_forkserver) is None
    assert "refused: environment differs in OMP_NUM_THREADS" in capfd.readouterr().err


def test_a_malformed_or_abandoned_request_leaves_the_fork_server_answering(lone_forkserver, monkeypatch, capfd):
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as connection:
        connection.connect(str(lone_forkserver))
        connection.send(b"not json")
        assert json.loads(connection.recv(4096))["refused"].startswith("bad request")
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as connection:
        connection.connect(str(lone_forkserver))
    monkeypatch.setenv("MALLOC_ARENA_MAX", "7")
    assert serve_forked(lone_forkserver) is None
    assert "refused: environment differs in MALLOC_ARENA_MAX" in capfd.readouterr().err


def test_a_program_without_a_fork_server_serves_alone(tmp_path: Path):
    assert serve_forked(tmp_path / "grpc-forkserver.sock") is None
