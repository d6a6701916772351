"""``python -m grpc_service`` (or ``instance-detector-grpc``): choose the metrics directory, then serve.

The server is forked from the fork server when one runs (grpc_service.forkserver, as in
supervisord.conf): it then shares torch's import with the other gRPC program's server, and this
process stands in for it. Otherwise it serves here.

The order matters: prometheus_client fixes its multiprocess mode when first
imported, so the directory is prepared (the dead processes' live gauges dropped)
before the server module, and with it the metrics, is imported.
"""

import argparse
import sys

from common.metrics_dir import prepare_dir


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m grpc_service", description="Serve gRPC.")
    parser.add_argument("--wait-for-forkserver", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long for grpc-forkserver's socket (supervisord starts both at once)")
    args = parser.parse_args(argv)
    prepare_dir("grpc")
    from common.settings import ServerSettings
    from grpc_service.forked import serve_forked

    status = serve_forked(ServerSettings.from_env().grpc_forkserver_socket, args.wait_for_forkserver)
    if status is not None:
        sys.exit(status)
    from grpc_service.server import main

    main()


if __name__ == "__main__":
    run()
