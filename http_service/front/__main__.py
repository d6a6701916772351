"""``python -m http_service.front``: render nginx's configuration, then become nginx on the held port.

supervisord runs this as the ``front`` program. The configuration is rendered
from the same settings the other processes read (``common.settings``), into the
run directory, so nginx needs no root and writes nothing elsewhere. The public
port itself belongs to the ``listeners`` program (:mod:`http_service.listeners`);
nginx inherits it through its ``NGINX`` variable, the mechanism of its own
binary upgrades, so a restart of this program refuses no connection.
"""

from __future__ import annotations

import os
import shutil
import sys

from http_service.front.orphans import stop_orphaned_workers
from http_service.front.render import render_config
from http_service.listeners import exec_with_listener
from common.settings import ServerSettings, Settings


def main() -> None:
    server = ServerSettings.from_env()
    config = render_config(server, Settings.from_env())
    nginx = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)), None
    )
    if nginx is None:
        sys.exit("nginx is not installed: the HTTP port is served through it (Debian: apt-get install nginx-light, "
                 "or `make nginx`)")
    stop_orphaned_workers(config.parent / "nginx.pid")
    prefix = str(config.parent)
    exec_with_listener(
        "front", [nginx, "-p", prefix, "-c", str(config), "-e", "stderr", "-g", "daemon off;"], {"NGINX": "{fd};"}
    )


main()
