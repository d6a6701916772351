"""Steady load on both transports, every call recorded: what chaos runs and the Docker test use.

HTTP clients open a connection per call, as curl does, or keep one open, as Home Assistant's and
Frigate's session-based clients do; gRPC clients keep one channel each.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

import grpc

# A kill -9 may fail the calls in flight on the killed process: one per client of its transport.
MAX_KILL_FAILURES = 2


@dataclass
class Call:
    transport: str
    start: float
    end: float
    ok: bool
    error: str = ""


@dataclass
class SteadyLoad:
    """Clients calling back to back until stopped; every call is recorded with its outcome.

    HTTP clients open a connection per call, as curl does; ``keep_alive_clients`` more keep one
    connection open across calls (a failed call costs them their connection, as it would a
    ``requests.Session``: a front that closed it under a request fails that request); gRPC
    clients keep one channel each, as a gRPC application does.
    """

    http_url: str
    grpc_target: str
    image_url: str
    http_clients: int = 2
    grpc_clients: int = 2
    keep_alive_clients: int = 0
    calls: list[Call] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _http_client(self) -> None:
        body = json.dumps({"url": self.image_url}).encode()
        while not self._stop.is_set():
            request = urllib.request.Request(
                f"{self.http_url}/predict", data=body, headers={"Content-Type": "application/json"}
            )
            start = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    ok, error = bool(json.loads(response.read()).get("objects")), ""
            except urllib.error.HTTPError as failure:
                ok, error = False, f"HTTP {failure.code}"
            except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as failure:
                ok, error = False, type(failure).__name__
            self._record(Call("http", start, time.monotonic(), ok, error))
            if not ok:
                time.sleep(0.05)

    def _keep_alive_client(self) -> None:
        body = json.dumps({"url": self.image_url}).encode()
        address = urllib.parse.urlsplit(self.http_url)
        connection: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
                connection.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = response.read()
                ok = response.status == 200 and bool(json.loads(answer).get("objects"))
                error = "" if ok else f"HTTP {response.status}"
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, ValueError, http.client.HTTPException) as failure:
                ok, error = False, type(failure).__name__
            if not ok and connection is not None:
                connection.close()
                connection = None
            self._record(Call("http", start, time.monotonic(), ok, error))
            if not ok:
                time.sleep(0.05)
        if connection is not None:
            connection.close()

    def _grpc_client(self) -> None:
        from proto import inference_pb2, inference_pb2_grpc

        with grpc.insecure_channel(self.grpc_target) as channel:
            stub = inference_pb2_grpc.InstanceDetectorStub(channel)
            while not self._stop.is_set():
                start = time.monotonic()
                try:
                    ok = bool(stub.Predict(inference_pb2.InstanceDetectorInput(url=self.image_url), timeout=60).objects)
                    error = ""
                except grpc.RpcError as failure:
                    ok, error = False, f"{failure.code().name}: {failure.details()}"
                self._record(Call("grpc", start, time.monotonic(), ok, error))
                if not ok:
                    time.sleep(0.05)

    def start(self) -> None:
        clients = ([self._http_client] * self.http_clients + [self._keep_alive_client] * self.keep_alive_clients
                   + [self._grpc_client] * self.grpc_clients)
        self._threads = [threading.Thread(target=client, daemon=True) for client in clients]
        for thread in self._threads:
            thread.start()

    def stop(self) -> int:
        """Stop the clients; returns how many had already died, whose calls the counts would miss."""
        died = sum(not thread.is_alive() for thread in self._threads)
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=70)
        return died

    def window(self, transport: str, start: float, end: float) -> list[Call]:
        """The calls that ended in the window: a failure belongs to the action that caused it, even
        if the call started just before (one in flight on a process killed the next instant)."""
        with self._lock:
            return [c for c in self.calls if c.transport == transport and start <= c.end <= end]

    def answered_after(self, transport: str, moment: float) -> bool:
        with self._lock:
            return any(c.ok and c.transport == transport and c.start >= moment for c in self.calls)
