"""The one inference core both transports call: URL in, named detections out.

Fetching and decoding run outside the detector's lock, so a slow image server
ties up only its own request thread, never the model.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from model.config import Settings
from model.detector import Detection, Detector
from model.errors import ModelNotReady
from model.fetch import Fetcher
from model.images import decode_image, limit_side, to_tensor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    detections: list[Detection]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [d.label for d in self.detections]


def configure_torch(threads: int) -> None:
    """Pin intra-op threads before any parallel work; inter-op parallelism buys nothing here."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        log.debug("inter-op threads already fixed for this process")


class Pipeline:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.fetcher = Fetcher(settings.fetch)
        self.detector: Detector | None = None
        self.load_error: str | None = None

    def load(self) -> None:
        """Load the model and run one warm-up inference: readiness means the first call is fast."""
        configure_torch(self.settings.torch_threads)
        detector = Detector.load(self.settings.model_dir, self.settings.score_threshold)
        started = time.perf_counter()
        detector.warm_up()
        log.info(
            "model warm (%.2fs warm-up, %d torch threads)", time.perf_counter() - started, torch.get_num_threads()
        )
        self.detector = detector

    def load_in_background(self, on_ready: Callable[[Detector], None] | None = None) -> threading.Thread:
        """Load without blocking start-up, so health checks answer (not ready) while it runs."""

        def _load() -> None:
            try:
                self.load()
                if on_ready is not None and self.detector is not None:
                    on_ready(self.detector)
            except Exception as exc:  # noqa: BLE001 - reported through readiness and the log
                self.load_error = f"{exc.__class__.__name__}: {exc}"
                log.exception("model failed to load from %s", self.settings.model_dir)

        thread = threading.Thread(target=_load, name="model-loader", daemon=True)
        thread.start()
        return thread

    @property
    def ready(self) -> bool:
        return self.detector is not None and self.detector.warm

    def predict_url(self, url: str, timeout: float | None = None) -> Prediction:
        if self.detector is None or not self.ready:
            reason = f"the model failed to load ({self.load_error})" if self.load_error else "the model is still loading"
            raise ModelNotReady(f"{reason}; retry shortly")
        started = time.perf_counter()
        fetched = self.fetcher.fetch(url, timeout)
        fetched_at = time.perf_counter()
        image = limit_side(decode_image(fetched.data, self.settings.max_image_pixels), self.settings.max_side)
        tensor = to_tensor(image)
        decoded_at = time.perf_counter()
        detections = self.detector.detect(tensor)
        done = time.perf_counter()
        timings = {"fetch": fetched_at - started, "decode": decoded_at - fetched_at, "inference": done - decoded_at}
        return Prediction(detections, timings)
