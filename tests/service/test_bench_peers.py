"""scripts/bench_peers.py builds the Triton + OpenVINO int8 peer, runs the same client against both, and reports.

A benchmark prints numbers and asserts no speed. What is checked: the peer is a real detector
(its int8 model, quantized by NNCF here, scores on the public labels like a detector, not like
noise), this service keeps its own score, and no request failed on either side; a peer that
cannot start (harness/peer_process.py) is tried again and its own error shown; and a run that
fails against a started peer shows what the peer said.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import peer_process
from tests.conftest import REPO_ROOT


def test_the_peer_and_this_service_answer_the_same_client(yolov5_dir, shared_dir, tmp_path):
    report = tmp_path / "peers.json"
    result = subprocess.run(
        [sys.executable, "-m", "scripts.bench_peers", "--serve", str(yolov5_dir), "--images",
         str(shared_dir / "eval" / "images"), "--labels", str(shared_dir / "eval" / "labels.json"),
         "--concurrency", "1,2", "--seconds", "2", "--work", str(tmp_path / "peer"), "--json", str(report)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "AMD" in result.stdout or "Intel" in result.stdout or "CPUs usable" in result.stdout
    results = json.loads(report.read_text())
    assert set(results) == {"this service", "Triton + OpenVINO int8"}
    for server, found in results.items():
        assert [level["concurrency"] for level in found["levels"]] == [1, 2], server
        assert all(level["requests"] > 0 and level["failures"] == 0 for level in found["levels"]), server
        assert len(found["labels"]) == 17, server
    assert results["this service"]["score"] >= 0.8
    assert results["Triton + OpenVINO int8"]["score"] >= 0.6
    assert "c=1: this service / peer = " in result.stdout


def test_a_peer_that_cannot_start_is_tried_twice_and_its_own_error_shown(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(peer_process, "PEER_PYTHON", Path(sys.executable))  # the peer's script, without its venv
    missing = tmp_path / "no-such-model.xml"
    with pytest.raises(SystemExit) as stopped:
        with peer_process.Peer(missing, tmp_path / "names.json", instances=1, hint="LATENCY"):
            pass
    message = str(stopped.value)
    assert message.startswith("the peer did not start; its last words:")
    assert "Traceback" in message and "Error" in message.splitlines()[-1], message
    assert capsys.readouterr().err.count("the peer did not start (attempt") == 2


def test_a_run_that_fails_against_a_started_peer_shows_what_the_peer_said(tmp_path, monkeypatch, capsys):
    """The peer's stderr outlives its start: a client failing mid-run is explained by the peer's own words."""
    fake = tmp_path / "python"
    fake.write_text(f"""#!{sys.executable}
import os, sys, time
if sys.argv[1] == "-c":  # peer_env() asks the peer's Python for its library folder
    os.execv({sys.executable!r}, [{sys.executable!r}, *sys.argv[1:]])
print('{{"http": "127.0.0.1:1"}}', flush=True)
print("the model server fell over: out of shared memory", file=sys.stderr, flush=True)
time.sleep(60)
""")
    fake.chmod(0o755)
    monkeypatch.setattr(peer_process, "PEER_PYTHON", fake)
    with pytest.raises(SystemExit, match="the client failed"):
        with peer_process.Peer(tmp_path / "model.xml", tmp_path / "names.json", instances=1, hint="LATENCY") as peer:
            assert peer.http == "127.0.0.1:1"
            raise SystemExit("the client failed against the peer")
    said = capsys.readouterr().err
    assert "the peer's last words:" in said and "out of shared memory" in said, said
