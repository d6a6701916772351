"""The request path of one serving process: image bytes (fetched or uploaded) to detections.

Fetching and decoding run outside the model thread, so a slow image server ties up only its
own request thread, never the model. The detector arrives resolved (:mod:`serving.service`
looks the model name up once per request).
"""

from __future__ import annotations

import time

from common.settings import Settings
from model.card import ModelCard
from model.detector import Detector
from model.inference_thread import Alive
from model.input_image import fitted_size
from model.memory import release_freed_memory
from serving.decode_budget import MIB, DecodeBudget
from serving.fetch import Fetcher
from serving.images import PREVIEW_MAX_SIDE, decode_cost, finish, limit_side, open_near, stored_size, to_pixels
from serving.options import DetectOptions
from serving.prediction import Prediction


def max_side_for(settings: Settings, card: ModelCard) -> int:
    """The longest side an image is shrunk to before the model: DETECTOR_MAX_SIDE, else the export's own."""
    return settings.max_side if settings.max_side is not None else card.max_side


# An image up to this many times the model's side goes to the model thread as decoded, which shrinks
# it faster than Pillow would here (model.input_image); a larger one (a JPEG decodes at most twice
# the side, so only other formats) is shrunk here first, so that no request waits for the model
# holding a full-size picture.
SHRINK_ON_MODEL_THREAD_UP_TO = 2


class Pipeline:
    """Fetch, decode within the process's decode budget, and run a resolved detector."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.fetcher = Fetcher(settings.fetch)
        self.decode_budget = DecodeBudget(settings.decode_memory_mb * MIB)

    def fetch(self, url: str, timeout: float | None) -> tuple[bytes, dict[str, float]]:
        """The image at ``url`` (SSRF-guarded, capped) and the seconds it took, as a stage timing."""
        started = time.perf_counter()
        data = self.fetcher.fetch(url, timeout).data
        return data, {"fetch": time.perf_counter() - started}

    def predict(
        self,
        detector: Detector,
        data: bytes,
        options: DetectOptions,
        timings: dict[str, float],
        alive: Alive | None,
    ) -> Prediction:
        """Decode ``data`` and detect; ``alive`` is asked before the model runs (model.inference_thread)."""
        started = time.perf_counter()
        max_side = max_side_for(self.settings, detector.card)
        opened, planned_size = open_near(data, self.settings.max_image_pixels, max_side)
        cost = decode_cost(opened)
        with self.decode_budget.reserve(cost, self.settings.fetch.deadline):
            upright = finish(opened)
            original_size = stored_size(planned_size, upright)
            model_size = fitted_size(upright.width, upright.height, max_side)
            large = max(upright.size) > SHRINK_ON_MODEL_THREAD_UP_TO * max_side
            pixels = to_pixels(limit_side(upright, max_side) if large else upright)
            preview = limit_side(upright, PREVIEW_MAX_SIDE)
            del opened, upright
            release_freed_memory(cost)
        decoded_at = time.perf_counter()
        waits: dict[str, float] = {}
        detections = options.select(detector.detect(pixels, options.threshold, options.masks, alive, waits, max_side))
        done = time.perf_counter()
        queue = waits.get("queue", 0.0)
        # "queue": waiting for the model thread (other requests' forwards); "inference": the model's own time.
        timings = {**timings, "decode": decoded_at - started, "queue": queue, "inference": done - decoded_at - queue}
        return Prediction(detections, model_size, preview, original_size, detector, timings, int(waits.get("batch", 1)))
