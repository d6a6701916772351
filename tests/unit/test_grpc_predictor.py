"""The benchmarks' gRPC client: one channel, or a connection per calling thread (docs/api.md)."""

from __future__ import annotations

from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import grpc
import pytest

from harness.predictors import grpc_predictor


@pytest.fixture(scope="module")
def echo_peer() -> Iterator[str]:
    """A Predict server that answers with the caller's address: which connection a call came on."""
    from proto import inference_pb2, inference_pb2_grpc

    class Echo(inference_pb2_grpc.InstanceDetectorServicer):
        def Predict(self, request, context):  # noqa: N802 - the generated name
            return inference_pb2.InstanceDetectorOutput(objects=[context.peer()])

    server = grpc.server(futures.ThreadPoolExecutor(8))
    inference_pb2_grpc.add_InstanceDetectorServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def _peers_per_thread(predict, threads: int, calls: int) -> list[set[str]]:
    def client(_: int) -> set[str]:
        return {peer for _ in range(calls) for peer in predict("http://127.0.0.1/x.jpg")}

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(client, range(threads)))


def test_one_channel_is_one_connection_for_every_thread(echo_peer):
    seen = _peers_per_thread(grpc_predictor(echo_peer), threads=4, calls=3)
    assert len(set().union(*seen)) == 1


def test_channels_give_each_thread_a_connection_of_its_own(echo_peer):
    seen = _peers_per_thread(grpc_predictor(echo_peer, channels=4), threads=4, calls=3)
    assert all(len(peers) == 1 for peers in seen), seen  # a thread keeps to its channel
    assert len(set().union(*seen)) == 4, seen
