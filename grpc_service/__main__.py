"""``python -m grpc_service``: choose the metrics directory, then start the server.

The order matters: prometheus_client fixes its multiprocess mode when first
imported, so the directory is prepared (and this process's stale files
wiped) before the server module, and with it the metrics, is imported.
"""

from model.metrics_dir import prepare_dir

prepare_dir("grpc", wipe=True)

from grpc_service.server import main  # noqa: E402

main()
