"""Render ``nginx.conf.template`` from the service's settings."""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from string import Template

from common.limits import BATCH_BODY_BYTES, HEADER_LINE_BYTES, JSON_BODY_BYTES, upload_body_bytes
from common.settings import ServerSettings, Settings

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
# A request's headers must arrive whole within this, and its body must not pause longer.
CLIENT_TIMEOUT_SECONDS = 10
WORKER_CONNECTIONS = 4096
_TEMP_DIRS = ("body", "proxy", "fastcgi", "uwsgi", "scgi")


class _NginxTemplate(Template):
    """``%{name}`` placeholders: nginx's own ``$variables`` pass through untouched."""

    delimiter = "%"


def _user_directive() -> str:
    """Started as root, nginx would hand its workers to ``nobody``, who cannot reach gunicorn's socket.

    Its workers run as the user every other program of the service runs as
    (unprivileged in the Docker image, where nginx never starts as root).
    """
    if os.geteuid() != 0:
        return ""
    return f"user {pwd.getpwuid(os.geteuid()).pw_name};\n"


def render_config(server: ServerSettings, settings: Settings) -> Path:
    """Write ``<run_dir>/front/nginx.conf`` (and the temp folders nginx wants) and return its path."""
    front = server.run_dir / "front"
    for name in _TEMP_DIRS:
        (front / name).mkdir(parents=True, exist_ok=True)
    text = _NginxTemplate(TEMPLATE.read_text()).substitute(
        user_directive=_user_directive(),
        run_dir=server.run_dir,
        http_host=f"[{server.http_host}]" if ":" in server.http_host else server.http_host,
        http_port=server.http_port,
        worker_connections=WORKER_CONNECTIONS,
        client_timeout=CLIENT_TIMEOUT_SECONDS,
        header_buffer_bytes=HEADER_LINE_BYTES + 2,
        backend_timeout=server.http_timeout + 5,
        json_body_bytes=JSON_BODY_BYTES,
        batch_body_bytes=BATCH_BODY_BYTES,
        upload_body_bytes=upload_body_bytes(settings.fetch.max_bytes),
    )
    config = front / "nginx.conf"
    config.write_text(text)
    return config
