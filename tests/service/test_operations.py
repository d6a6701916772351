"""Operating the service: clean stops of `make run`, sockets that outlive restarts, chaos under load.

The stop tests run the real `make run` in a process group of its own and signal
the group as a terminal's Ctrl-C (or a cancelled CI job) does, then look for any
process of the service still alive and any listener left on its ports.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from http_service.listeners import Holder, receive
from common import procfs
from common.settings import ServerSettings
from common.metrics_dir import forget_dead_processes, prepare_dir
from tests.conftest import REPO_ROOT
from harness.ports import free_port
from harness.service_process import ServiceProcess, listening, service_processes


class MakeRun:
    """`make run` as a terminal runs it: the foreground job, in a process group of its own."""

    def __init__(self, run_dir: Path, model_dir: Path, *make_args: str) -> None:
        self.run_dir = run_dir
        # The environment the integration tests give supervisord: free 127.0.0.1 ports, the venv's PATH.
        self.env = ServiceProcess(REPO_ROOT, model_dir, run_dir).env
        self.output = run_dir.parent / f"{run_dir.name}-make.out"
        with open(self.output, "wb") as out:
            self.make = subprocess.Popen(
                ["make", "run", f"RUN_DIR={run_dir}", f"VENV={sys.prefix}", *make_args],
                cwd=REPO_ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.ports = (int(self.env["DETECTOR_HTTP_PORT"]), int(self.env["DETECTOR_GRPC_PORT"]))

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_ready(self, timeout: float = 180.0) -> int:
        """supervisord's pid once the ready line is out."""
        deadline = time.monotonic() + timeout
        while "==> ready:" not in self.text():
            assert self.make.poll() is None, f"make run ended early:\n{self.text()[-4000:]}"
            assert time.monotonic() < deadline, f"make run not ready after {timeout} s:\n{self.text()[-4000:]}"
            time.sleep(0.5)
        return int((self.run_dir / "supervisord.pid").read_text())

    def processes(self, supervisord: int) -> list[int]:
        """Everything make started: make's session (make, the foreground script) and supervisord's (the programs)."""
        return sorted(set(service_processes(self.run_dir, supervisord)) | set(service_processes(self.run_dir, self.make.pid)))

    def kill(self) -> None:
        for group in (self.make.pid, int((self.run_dir / "supervisord.pid").read_text())):
            try:
                os.killpg(group, signal.SIGKILL)
            except (OSError, ValueError):
                pass


@pytest.fixture
def make_run(yolov5_dir: Path, tmp_path: Path):
    runs: list[MakeRun] = []

    def start(*make_args: str) -> MakeRun:
        run = MakeRun(tmp_path / f"run{len(runs)}", yolov5_dir, *make_args)
        runs.append(run)
        return run

    yield start
    for run in runs:
        if run.make.poll() is None:
            run.kill()


def _wait_gone(run: MakeRun, supervisord: int, timeout: float = 60.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := run.processes(supervisord)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _stop_budget() -> float:
    """supervisord stops its programs one after another: the sum of their stopwaitsecs bounds a stop."""
    config = (REPO_ROOT / "supervisord.conf").read_text()
    return sum(float(line.split("=", 1)[1]) for line in config.splitlines() if line.startswith("stopwaitsecs="))


def _wait_stopped(run: MakeRun, supervisord: int) -> None:
    """make ends within the stop budget (and a margin for a busy machine), or the failure says what lingers."""
    budget = _stop_budget() + 60
    try:
        run.make.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        alive = [str(procfs.stat(pid)) for pid in run.processes(supervisord)]
        log = (run.run_dir / "service.log").read_text(errors="replace")[-4000:]
        pytest.fail(f"make run still running {budget:.0f} s after the signal; alive:\n" + "\n".join(alive)
                    + f"\n--- service.log (end):\n{log}")


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _blocked(status: Path) -> set[int]:
    """The signals a process or thread blocks (SigBlk of its /proc status)."""
    line = next(line for line in status.read_text().splitlines() if line.startswith("SigBlk:"))
    mask = int(line.split()[1], 16)
    return {number for number in range(1, 65) if mask & (1 << (number - 1))}


def _seen_waiting_for_signals(thread: Path, timeout: float = 10.0) -> bool:
    """The thread is seen in sigtimedwait (its wait channel) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (thread / "wchan").read_text().startswith("do_sigtimedwait"):
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm-to-group"])
def test_a_signal_to_make_runs_process_group_stops_every_process(make_run, signum):
    run = make_run()
    supervisord = run.wait_ready()
    started = run.processes(supervisord)
    assert len(started) >= 8, started  # make, the foreground, supervisord, listeners, nginx x2, gunicorn x2, gRPC x2
    # The foreground takes the stop signals in its loop (sigtimedwait, which unblocks them in the main thread
    # while it waits), and every other thread blocks them (gRPC's, while the readiness check's linger, too):
    # the kernel cannot hand one to a thread where Python would never run its handler.
    foreground = procfs.children(run.make.pid)
    assert len(foreground) == 1, foreground
    main = procfs.PROC / str(foreground[0]) / "task" / str(foreground[0])
    assert _seen_waiting_for_signals(main)
    others = [thread for thread in main.parent.iterdir() if thread != main]
    assert all(STOP_SIGNALS <= _blocked(thread / "status") for thread in others)
    os.killpg(run.make.pid, signum)
    _wait_stopped(run, supervisord)
    assert _wait_gone(run, supervisord) == []
    assert not any(listening(port) for port in run.ports)
    log = run.text()
    assert f"==> {signal.Signals(signum).name}: stopping every program" in log
    for program in ("front", "http", "grpc", "grpc2", "grpc-forkserver", "listeners"):
        assert f"stopped: {program} (exit status 0)" in log, program
    assert "==> supervisord stopped every program of the service and exited" in log
    assert (run.run_dir / "service.log").read_text(errors="replace").count("stopped: ") >= 6


def test_the_background_command_starts_once_ready_niced_and_stops_with_ctrl_c(make_run, tmp_path):
    """make run's deferred int8 build (a stand-in here) runs beside the ready service, and Ctrl-C ends it too."""
    marker = tmp_path / "background-started"
    run = make_run(f"THEN=bash -c 'touch {marker}; exec sleep 600'")
    supervisord = run.wait_ready()
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, f"the background command did not start:\n{run.text()[-3000:]}"
        time.sleep(0.2)
    sleeping = [pid for pid in run.processes(supervisord) if procfs.stat(pid).comm == "sleep"]
    assert len(sleeping) == 1
    assert not STOP_SIGNALS & _blocked(procfs.PROC / str(sleeping[0]) / "status")  # its own stop signal works
    assert os.getpriority(os.PRIO_PROCESS, sleeping[0]) >= os.getpriority(os.PRIO_PROCESS, 0) + 10
    time.sleep(2)
    assert procfs.stat(sleeping[0]) is not None  # still running: its starter thread ending did not end it
    os.killpg(run.make.pid, signal.SIGINT)
    run.make.wait(timeout=90)
    assert _wait_gone(run, supervisord) == []
    assert procfs.stat(sleeping[0]) is None


def test_make_stop_then_a_signal_to_the_group_still_stops_everything(make_run):
    """A harness that runs `make stop` and then signals make's group before supervisord has finished."""
    run = make_run()
    supervisord = run.wait_ready()
    stop = subprocess.Popen(["make", "stop", f"RUN_DIR={run.run_dir}", f"VENV={sys.prefix}"],
                            cwd=REPO_ROOT, env=run.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(0.5)
    os.killpg(run.make.pid, signal.SIGTERM)
    assert "stopped" in stop.communicate(timeout=90)[0].decode()
    run.make.wait(timeout=90)
    assert _wait_gone(run, supervisord) == []
    assert not any(listening(port) for port in run.ports)


def test_the_foreground_killed_outright_still_takes_the_service_down(make_run):
    """kill -9 of make run's foreground (nothing can catch it): the kernel tells supervisord (PR_SET_PDEATHSIG)."""
    run = make_run()
    supervisord = run.wait_ready()
    foreground = procfs.stat(supervisord).ppid
    assert "-m\x00launcher" in Path(f"/proc/{foreground}/cmdline").read_text()
    os.kill(foreground, signal.SIGKILL)
    run.make.wait(timeout=90)
    assert _wait_gone(run, supervisord) == []
    assert not any(listening(port) for port in run.ports)


# The listeners program -----------------------------------------------------------------------

@pytest.fixture
def holder(tmp_path: Path):
    server = ServerSettings(run_dir=tmp_path, http_host="127.0.0.1", http_port=free_port())
    running = Holder(server)
    thread = threading.Thread(target=running.serve, daemon=True)
    thread.start()
    yield running
    running.stop.set()
    thread.join(timeout=5)


def test_the_held_sockets_take_connections_while_no_server_accepts(holder):
    """A restart's gap: the port and gunicorn's socket queue connections instead of refusing them."""
    front = receive("front", holder.server)
    http = receive("http", holder.server)
    front.close()
    http.close()
    with socket.create_connection(("127.0.0.1", holder.server.http_port), timeout=2):
        pass
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(holder.server.http_socket))
    again = receive("front", holder.server)
    conn, _ = again.accept()  # the connection queued while nobody served is there for the next server
    conn.close()
    again.close()


def test_a_successor_holder_binds_once_the_old_servers_let_go(holder, tmp_path: Path):
    """After the holder is killed, nginx still listens on its copy: the next holder waits for it to close."""
    served = receive("front", holder.server)
    holder.stop.set()
    time.sleep(0.5)
    successor = Holder(holder.server)
    thread = threading.Thread(target=successor.serve, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        assert "front" not in successor.sockets  # the port is still served by the old copy
        served.close()
        fresh = receive("front", holder.server)
        assert fresh.getsockname()[1] == holder.server.http_port
        fresh.close()
    finally:
        successor.stop.set()
        thread.join(timeout=5)


# Metrics across restarts ---------------------------------------------------------------------

def test_metrics_are_wiped_once_per_supervisord_and_dead_gauges_dropped(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DETECTOR_RUN_DIR", str(tmp_path))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)  # prepare_dir sets it; restored after
    directory = prepare_dir("grpc")
    counter = directory / "counter_999999.db"
    dead_gauge = directory / "gauge_livesum_999999.db"
    live_gauge = directory / f"gauge_livesum_{os.getppid()}.db"
    for path in (counter, dead_gauge, live_gauge):
        path.write_bytes(b"x")
    assert forget_dead_processes(directory) == [999999]
    assert counter.exists() and live_gauge.exists() and not dead_gauge.exists()
    prepare_dir("http")  # a restarted program under the same supervisord keeps its predecessors' counts
    assert counter.exists()
    (tmp_path / "metrics" / "owner").write_text("1-0")  # files of an earlier supervisord
    prepare_dir("http")
    assert not counter.exists()


# Chaos -------------------------------------------------------------------------------------

def test_restarts_and_kills_under_load_keep_the_promises(yolov5_dir: Path, shared_dir: Path):
    """`make chaos`: every restart fails nothing, every kill -9 at most 2 per transport, nothing survives."""
    result = subprocess.run(
        [sys.executable, "-m", "scripts.chaos", "--serve", str(yolov5_dir), "--images",
         str(shared_dir / "eval" / "images")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=420,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "all promises kept" in result.stdout
