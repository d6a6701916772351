"""``python -m grpc_service`` (or ``instance-detector-grpc``): choose the metrics directory, then serve.

The order matters: prometheus_client fixes its multiprocess mode when first
imported, so the directory is prepared (the dead processes' live gauges dropped)
before the server module, and with it the metrics, is imported.
"""

from common.metrics_dir import prepare_dir


def run() -> None:
    prepare_dir("grpc")
    from grpc_service.server import main

    main()


if __name__ == "__main__":
    run()
