#!/usr/bin/env python3
"""How long a newcomer waits: `make run` in a fresh clone, timed to its first answer and to int8.

Clones the repository's HEAD into a new folder, runs `DETECTOR_URL_ALLOWLIST=127.0.0.1 make run`
there as a terminal would (its own process group, the shared photos as the check images), and
prints the seconds from `make run` to: the ready line, the first `/predict` answer on a photo
served from 127.0.0.1, and (where int8 was deferred) the int8 version serving. Then it stops
`make run` with SIGINT, as Ctrl-C would, and checks that nothing it started is left.

    python -m scripts.first_answer --shared ../shared [--rev REV] [--keep DIR] [--time-limit 600]

Everything goes to 127.0.0.1 (ports 8080 and 9090 must be free); the clone's `.venv` is built
from scratch, so the pip cache (or the machine's wheel mirror) decides the setup time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from harness.image_server import serve_folder
from harness.service_process import REPO_ROOT, listening
from model.cpu import cpu_model

PHOTO = "darknet_dog.jpg"


def _get(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _predict(http: str, image_url: str) -> list[str] | None:
    request = urllib.request.Request(f"{http}/predict", data=json.dumps({"url": image_url}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["objects"]
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return None


def _int8_serving(http: str) -> bool:
    model = _get(f"{http}/v1/model")
    return bool(model) and model.get("precision") == "int8"


def measure(clone: Path, shared: Path, time_limit: float) -> dict[str, float | str | None]:
    http = "http://127.0.0.1:8080"
    output = clone / "make-run.out"
    env = {**os.environ, "DETECTOR_URL_ALLOWLIST": "127.0.0.1"}
    found: dict[str, float | str | None] = {"ready line": None, "first answer": None, "int8 serving": None}
    with serve_folder(shared / "eval" / "images") as photos, open(output, "wb") as out:
        started = time.monotonic()
        make = subprocess.Popen(["make", "run", f"SHARED_DIR={shared}"], cwd=clone, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while time.monotonic() - started < time_limit and make.poll() is None:
                elapsed = round(time.monotonic() - started, 1)
                if found["ready line"] is None and "==> ready:" in output.read_text(errors="replace"):
                    found["ready line"] = elapsed
                if found["first answer"] is None and listening(8080) and _predict(http, f"{photos}/{PHOTO}"):
                    found["first answer"] = elapsed
                    found["precision then"] = (_get(f"{http}/v1/model") or {}).get("precision")
                if found["first answer"] is not None and _int8_serving(http):
                    found["int8 serving"] = elapsed
                    break
                if found["first answer"] is not None and "int8 not kept" in output.read_text(errors="replace"):
                    break
                time.sleep(0.5)
        finally:
            stop_started = time.monotonic()
            os.killpg(make.pid, signal.SIGINT)
            try:
                make.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(make.pid, signal.SIGKILL)
            found["stopped in"] = round(time.monotonic() - stop_started, 1)
            found["ports free after stop"] = "yes" if not (listening(8080) or listening(9090)) else "NO"
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared")
    parser.add_argument("--rev", default="HEAD", help="the commit to clone (an earlier one is a baseline)")
    parser.add_argument("--keep", type=Path, help="clone here and keep it (default: a temporary folder, removed)")
    parser.add_argument("--time-limit", type=float, default=600.0)
    args = parser.parse_args(argv)
    if listening(8080) or listening(9090):
        parser.error("8080 or 9090 is taken: stop the running service first (make stop)")
    with tempfile.TemporaryDirectory(prefix="first-answer-") as scratch:
        clone = args.keep or Path(scratch) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "-q", args.rev], check=True)
        found = measure(clone, args.shared.resolve(), args.time_limit)
    print(f"CPU: {cpu_model()}; commit {args.rev}")
    for what, value in found.items():
        print(f"{what:24} {value if value is not None else 'not within the limit'}"
              + (" s" if isinstance(value, float) else ""))
    return 0 if found["first answer"] is not None else 1


if __name__ == "__main__":
    sys.exit(main())
