"""gunicorn settings for the HTTP service (``gunicorn -c http_service/gunicorn_conf.py``).

Runs in the gunicorn master before any worker exists, which is why the
Prometheus multiprocess directory is chosen here: workers inherit it.
Every knob comes from ``common.settings.ServerSettings`` (environment variables),
so supervisord, Docker and the tests configure the same file. gunicorn listens
on a Unix socket that only the buffering front (``http_service.front``, nginx
on the public port) reaches: slow clients never hold a gunicorn thread.
"""

# Imported in the master on purpose: torch allocates ~280 MB at import (this is the CUDA
# build's cost, cuBLASLt's alone 94 MB; the CPU wheels' is smaller), which forked workers then
# share copy-on-write instead of each paying it. Safe to fork: importing starts no threads;
# each worker loads its model and creates its thread pool only after the fork. torchvision's
# Python package is never imported by a serving process (model.vision_ops).
import torch  # noqa: F401

from common.limits import HEADER_LINE_BYTES
from common.settings import ServerSettings
from common.metrics_dir import forget_dead_processes, prepare_dir

SERVER = ServerSettings.from_env()

METRICS_DIR = prepare_dir("http")

# After the metrics directory: the error writer counts its answers in the multiprocess metrics.
from http_service import gunicorn_errors  # noqa: E402

gunicorn_errors.install()

# The socket comes from the listeners program (python -m http_service, systemd's LISTEN_FDS);
# this address only names it in the log.
bind = f"unix:{SERVER.http_socket}"
# Two workers by default: a second request no longer waits for the first one's whole forward.
# Their OpenMP teams do not starve each other: a forward takes the threads the service's other
# running forwards leave it (model.core_share); uncoordinated, two teams on two cores gave 15
# req/s at c=4 against 22 with one worker (docs/performance-log.md, 2026-11-24 and 2026-12-04).
workers = SERVER.http_workers
# With setproctitle installed, ps shows "gunicorn: master [detector-http]" and "gunicorn: worker [detector-http]".
proc_name = "detector-http"
# Threads let a worker keep fetching and decoding images for queued requests while one
# request's inference runs on the model thread. Predictions may hold at most
# DETECTOR_MAX_IN_FLIGHT of them (serving.admission); the rest stay free for health checks and metrics.
worker_class = "gthread"
threads = SERVER.http_threads
timeout = SERVER.http_timeout
# What nginx lets through, gunicorn takes: its default request line (4094) refused long URLs nginx had accepted.
limit_request_line = HEADER_LINE_BYTES
limit_request_field_size = HEADER_LINE_BYTES
graceful_timeout = 30
wsgi_app = "http_service.app:create_default_app()"
accesslog = "-"
errorlog = "-"
# gunicorn's control socket defaults to one path per user, so two instances
# (say `make run` and the tests) would fight over it; supervisorctl is the
# control surface here.
control_socket_disable = True
access_log_format = '%(t)s %({x-forwarded-for}i)s "%(r)s" %(s)s %(b)s %(M)sms pid=%(p)s'


def post_fork(server, worker):  # noqa: ARG001 - gunicorn hook signature
    """A worker that reuses a dead process's pid must not start from its live gauges."""
    forget_dead_processes(METRICS_DIR)


def child_exit(server, worker):  # noqa: ARG001 - gunicorn hook signature
    """Drop a dead worker's live gauges (its counters keep counting in the total)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
