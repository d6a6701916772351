"""``python -m grpc_service.readiness NAME``: wait until the gRPC program NAME serves with a warm model.

``supervisorctl restart grpc`` returns once the program is RUNNING, which
supervisord decides by time alone (``startsecs``). On a busy machine the model
may still be loading then, and the server binds only once it is warm; restarting
the other gRPC server at that moment would leave the port with no listener.
``make reload`` therefore waits here, on the server's own Unix socket, before
it restarts the next one.
"""

from __future__ import annotations

import argparse
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.settings import ServerSettings


def serving(target: str) -> bool:
    """The gRPC health service at ``target`` (an address or ``unix:`` path) answers SERVING."""
    try:
        with grpc.insecure_channel(target) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
            return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="the supervisord program: grpc or grpc2")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait at most")
    args = parser.parse_args()
    target = f"unix:{ServerSettings.from_env().grpc_instance_socket(args.name)}"
    deadline = time.monotonic() + args.timeout
    while not serving(target):
        if time.monotonic() > deadline:
            print(f"{args.name} is not serving after {args.timeout:.0f} s ({target})", file=sys.stderr)
            return 1
        time.sleep(0.5)
    print(f"{args.name}: serving")
    return 0


if __name__ == "__main__":
    sys.exit(main())
