"""gRPC adapter: ``inference.InstanceDetector/Predict`` over the shared inference core.

The same server also serves ``detection.v1.Detector`` (structured detections,
see :mod:`grpc_service.detection_servicer`).
Also serves the standard health service (``SERVING`` only once the model is
warm) and server reflection, so ``grpcurl`` works without the proto file.
Started by ``python -m grpc_service`` (see ``__main__``), which points
prometheus_client at its multiprocess directory before this module loads.
"""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from common.logs import configure_logging
from common.metrics import GRPC_INFERENCE_COUNT
from common.settings import ServerSettings, Settings
from serving import DetectionService, Detector, lifecycle
from grpc_service import drain
from grpc_service.detection_servicer import DetectorServicer
from grpc_service.handlers import add_servicer, deadline_of
from common.limits import upload_body_bytes
from grpc_service.inference_servicer import TRANSPORT as V2_TRANSPORT, InferenceServicer
from proto import detection_pb2, grpc_inference_pb2, inference_pb2, inference_pb2_grpc

log = logging.getLogger("grpc_service")

# After the drain, calls still running get this long before they are cancelled.
STOP_GRACE_SECONDS = 5
# Answers with masks carry one RLE string per detection; requests stay small.
MAX_SEND_BYTES = 64 * 1024 * 1024
SERVICE_NAME = inference_pb2.DESCRIPTOR.services_by_name["InstanceDetector"].full_name
DETECTION_SERVICE_NAME = detection_pb2.DESCRIPTOR.services_by_name["Detector"].full_name
INFERENCE_PROTOCOL = grpc_inference_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
# Every service this server answers, as health and reflection name them.
SERVICE_NAMES = (SERVICE_NAME, DETECTION_SERVICE_NAME, INFERENCE_PROTOCOL.full_name)


class InstanceDetectorServicer(inference_pb2_grpc.InstanceDetectorServicer):
    def __init__(self, service: DetectionService):
        self.service = service

    def Predict(self, request: inference_pb2.InstanceDetectorInput, context: grpc.ServicerContext):  # noqa: N802
        GRPC_INFERENCE_COUNT.inc()
        prediction = self.service.predict_url(
            "grpc", request.url, alive=context.is_active, deadline=deadline_of(context)
        )
        return inference_pb2.InstanceDetectorOutput(objects=prediction.labels)


def build_server(
    service: DetectionService, health_servicer: health.HealthServicer, address: str, max_workers: int,
    instance_socket: Path | None = None, max_connection_age: float = ServerSettings.grpc_max_connection_age,
) -> grpc.Server:
    """Predictions may hold only ``max_in_flight`` of the ``max_workers`` threads (serving.admission), so
    health checks and GetModel always find one; RPCs beyond threads plus that many again wait in no
    queue: grpcio refuses them with RESOURCE_EXHAUSTED before any thread is spent.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        maximum_concurrent_rpcs=max_workers + service.settings.max_in_flight,
        options=[
            # ModelInfer carries images: as large as an HTTP upload may be, and no larger.
            ("grpc.max_receive_message_length", upload_body_bytes(service.settings.fetch.max_bytes)),
            ("grpc.max_send_message_length", MAX_SEND_BYTES),
            # Both gRPC programs listen on the port: one restarts while the other serves.
            ("grpc.so_reuseport", 1),
            *drain.connection_options(max_connection_age),
        ],
    )
    add_servicer(server, inference_pb2.DESCRIPTOR.services_by_name["InstanceDetector"], InstanceDetectorServicer(service))
    add_servicer(server, detection_pb2.DESCRIPTOR.services_by_name["Detector"], DetectorServicer(service))
    add_servicer(server, INFERENCE_PROTOCOL, InferenceServicer(service), V2_TRANSPORT)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    if server.add_insecure_port(address) == 0:
        raise RuntimeError(f"could not bind gRPC server to {address}")
    # The shared port reaches either server; this socket reaches this one (grpc_service.readiness).
    if instance_socket is not None and server.add_insecure_port(f"unix:{instance_socket}") == 0:
        raise RuntimeError(f"could not bind gRPC server to {instance_socket}")
    return server


def main() -> None:
    configure_logging()
    settings = Settings.from_env()
    server_settings = ServerSettings.from_env()
    address = f"{server_settings.grpc_host}:{server_settings.grpc_port}"
    health_servicer = health.HealthServicer()
    for name in (*SERVICE_NAMES, ""):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    def on_ready(_: Detector) -> None:
        for name in (*SERVICE_NAMES, ""):
            health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    service = lifecycle.start(settings, on_ready)
    # Warm before binding: the port is shared (SO_REUSEPORT) with the other gRPC program, and the
    # kernel would hand a cold process new connections whose calls could only be refused.
    service.wait_loaded()
    server = build_server(service, health_servicer, address, server_settings.grpc_threads,
                          server_settings.grpc_instance_socket(), server_settings.grpc_max_connection_age)
    server.start()
    log.info("gRPC server listening on %s", address)
    serve_until_signalled(server, health_servicer, server_settings)


def serve_until_signalled(server: grpc.Server, health_servicer: health.HealthServicer, settings: ServerSettings) -> None:
    """Serve until SIGTERM or SIGINT; then hand the clients over (grpc_service.drain) and stop.

    Health turns NOT_SERVING first, for clients and balancers that watch it.
    """
    wait_for_stop_signal()
    health_servicer.enter_graceful_shutdown()
    drain.drain(settings.grpc_port, settings.grpc_max_connection_age)
    log.info("shutting down gRPC server (GOAWAY, then up to %d s for calls)", STOP_GRACE_SECONDS)
    server.stop(grace=STOP_GRACE_SECONDS).wait()


def wait_for_stop_signal() -> None:
    """Block the main thread until SIGTERM (supervisord's stop) or SIGINT."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
