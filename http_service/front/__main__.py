"""``python -m http_service.front``: render nginx's configuration, then become nginx.

supervisord runs this as the ``front`` program. The configuration is rendered
from the same settings the other processes read (``model.config``), into the
run directory, so nginx needs no root and writes nothing elsewhere.
"""

from __future__ import annotations

import os
import shutil
import sys

from http_service.front.render import render_config
from model.config import ServerSettings, Settings


def main() -> None:
    server = ServerSettings.from_env()
    config = render_config(server, Settings.from_env())
    nginx = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)), None
    )
    if nginx is None:
        sys.exit("nginx is not installed: the HTTP port is served through it (Debian: apt-get install nginx-light, "
                 "or `make nginx`)")
    prefix = str(config.parent)
    os.execv(nginx, [nginx, "-p", prefix, "-c", str(config), "-e", "stderr", "-g", "daemon off;"])


main()
