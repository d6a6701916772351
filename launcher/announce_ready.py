"""The one line `make run` prints when the service is ready: where, which model, how to stop it.

:mod:`launcher` asks for it beside supervisord's log; it polls /v1/model and the gRPC
health service on 127.0.0.1 until both answer, the service stops, or 15 minutes pass.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Callable

from grpc_service.readiness import serving
from common.settings import ServerSettings


def _get(http: str, path: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{http}{path}", timeout=2) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _others(http: str, default: str) -> str:
    """What is on its way for the default model, and the repository's other models (they serve
    /v1/detect's ``model``), for the ready line."""
    models = (_get(http, "/v1/models") or {}).get("models", [])
    upcoming = [f"; {m['upcoming']}" for m in models if m.get("name") == default and m.get("upcoming")]
    names = [m["name"] for m in models if m.get("name") != default]
    return "".join(upcoming) + (f"; also {', '.join(names)} (GET /v1/models)" if names else "")


def wait_ready(give_up: Callable[[], bool]) -> str | None:
    """The ready line once both transports answer; None if ``give_up()`` turns true first."""
    server = ServerSettings.from_env()
    http = f"http://127.0.0.1:{server.http_port}"
    target = f"127.0.0.1:{server.grpc_port}"
    deadline = time.monotonic() + 15 * 60
    while time.monotonic() < deadline and not give_up():
        model = _get(http, "/v1/model")
        if model is not None and serving(target):
            return (
                f"\n==> ready: {http}/ (page), POST {http}/predict, gRPC {target}; model {model['name']} "
                f"({model['precision']}, licence {model['license'].split(':')[0]}){_others(http, model['name'])}. "
                "Stop with Ctrl-C here, or `make stop` from another terminal.\n\n"
            )
        time.sleep(1)
    return None
