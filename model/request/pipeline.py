"""The one inference core both transports call: an image (URL or bytes) in, named detections out.

Fetching and decoding run outside the detector's lock, so a slow image server
ties up only its own request thread, never the model.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from model.request.admission import Admission
from model.runtime.card import ModelCard
from model.config import Settings
from model.runtime.detector import Detection, Detector
from model.errors import ModelNotReady
from model.request.fetch import Fetcher
from model.request.decode_budget import MIB, DecodeBudget
from model.request.images import PREVIEW_MAX_SIDE, decode_cost, finish, limit_side, open_near, stored_size, to_tensor
from model.runtime.inference_thread import Alive, InferenceThread
from model.runtime.memory import keep_activations_on_heap, release_freed_memory
from model.request.options import DetectOptions
from model.runtime.repository import ModelRepository, scan_repository, single_export
from model.request.rle import encode

log = logging.getLogger(__name__)

DEFAULT_OPTIONS = DetectOptions()


@dataclass(frozen=True)
class Prediction:
    """Detections on ``image``, the (possibly shrunk) picture the model saw.

    ``original`` is the upright decoded picture, shrunk to at most
    ``PREVIEW_MAX_SIDE`` (the full-size decode is freed as soon as the model's
    copy exists), and ``original_size`` the upright size of
    the image as stored; ``box_at`` and ``mask_at`` map a detection onto a
    picture of any size (the stored size for JSON answers, a bounded copy for
    annotated PNGs).
    """

    detections: list[Detection]
    image: Image.Image
    original: Image.Image
    original_size: tuple[int, int]
    detector: Detector
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [d.label for d in self.detections]

    def box_at(self, detection: Detection, size: tuple[int, int]) -> list[float]:
        width, height = size
        scale = width / self.image.width
        x1, y1, x2, y2 = (value * scale for value in detection.box)
        return [round(min(max(x1, 0.0), width), 2), round(min(max(y1, 0.0), height), 2),
                round(min(max(x2, 0.0), width), 2), round(min(max(y2, 0.0), height), 2)]

    def mask_at(self, detection: Detection, size: tuple[int, int]) -> np.ndarray | None:
        if detection.mask is None:
            return None
        mask = detection.mask.numpy()
        if size != self.image.size:
            mask = np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST))
        return mask

    def image_box(self, detection: Detection) -> list[float]:
        """The box in pixels of the upright original image."""
        return self.box_at(detection, self.original_size)

    def image_mask_rle(self, detection: Detection) -> dict[str, object] | None:
        """The mask as COCO RLE at the original image's size."""
        mask = self.mask_at(detection, self.original_size)
        return None if mask is None else encode(mask)


def configure_torch(threads: int) -> None:
    """Pin intra-op threads before any parallel work; inter-op parallelism buys nothing here."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        log.debug("inter-op threads already fixed for this process")


class Pipeline:
    """The request path of one serving process, over its model repository (model.runtime.repository)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.fetcher = Fetcher(settings.fetch)
        self.admission = Admission(settings.max_in_flight)
        self.decode_budget = DecodeBudget(settings.decode_memory_mb * MIB)
        scan = single_export(settings.model_dir) if settings.model_dir else (
            lambda: scan_repository(settings.model_repository))
        self.models = ModelRepository(scan, self._load_version, settings.default_model, settings.models)
        self.load_error: str | None = None
        self._settled = threading.Event()

    def _load_version(self, folder: Path, thread: InferenceThread) -> Detector:
        detector = Detector.load(folder, self.settings.score_threshold, self.settings.precision, thread)
        started = time.perf_counter()
        detector.warm_up()
        log.info("model %s warm (%.2fs warm-up, %d torch threads, images shrunk to at most %d px)",
                 detector.card.name, time.perf_counter() - started, torch.get_num_threads(), self._max_side(detector))
        return detector

    def load(self) -> None:
        """Load every model of the repository, warm: readiness means the first call is fast.

        Raises if the default model (the one ``/predict`` serves) has no version that loads.
        """
        configure_torch(self.settings.torch_threads)
        keep_activations_on_heap()
        self.models.refresh()
        if not self.models.ready:
            source = self.settings.model_dir or self.settings.model_repository
            if self.models.default is None:
                raise RuntimeError(f"no model in {source} (expected <name>/<version>/model.json)")
            if self.models.default not in self.models.names():
                raise RuntimeError(f"the default model {self.models.default!r} is not in {source} "
                                   f"(it has: {', '.join(self.models.names()) or 'nothing'})")
            failed = [v.reason for s in self.models.status() if s.name == self.models.default
                      for v in s.versions if v.reason]
            raise RuntimeError(f"no version of the default model {self.models.default!r} in {source} loads: "
                               + "; ".join(failed))

    def load_in_background(
        self,
        on_ready: Callable[[Detector], None] | None = None,
        on_failure: Callable[[str], None] | None = None,
    ) -> threading.Thread:
        """Load without blocking start-up, so health checks answer (not ready) while it runs; then
        watch the repository every ``repository_poll_seconds`` (never, at 0)."""

        def _load() -> None:
            try:
                self.load()
                if on_ready is not None:
                    on_ready(self.models.get())
            except Exception as exc:  # noqa: BLE001 - reported through readiness and the log
                self.load_error = f"{exc.__class__.__name__}: {exc}"
                log.exception("the models failed to load")
                if on_failure is not None:
                    on_failure(self.load_error)
                return
            finally:
                self._settled.set()
            if self.settings.repository_poll_seconds > 0 and not self.settings.model_dir:
                self.models.poll(self.settings.repository_poll_seconds)

        thread = threading.Thread(target=_load, name="model-loader", daemon=True)
        thread.start()
        return thread

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Block until loading has ended (warm, or failed); True if it ended within ``timeout``."""
        return self._settled.wait(timeout)

    @property
    def not_ready_reason(self) -> str:
        """What a caller may know: the detail (paths, checksums) stays in the log."""
        if self.load_error:
            return "the model failed to load; the operator will find why in the service log"
        return "the model is still loading; retry shortly"

    @property
    def ready(self) -> bool:
        return self.models.ready

    def _max_side(self, detector: Detector) -> int:
        return self.settings.max_side if self.settings.max_side is not None else detector.card.max_side

    def ready_detector(self, model: str | None = None) -> Detector:
        """The warm detector serving ``model`` (None: the default), or ModelNotReady / ModelNotFound."""
        if self.load_error and not self.models.ready:
            raise ModelNotReady(self.not_ready_reason)
        return self.models.get(model)

    @property
    def card(self) -> ModelCard:
        """The default model's sidecar; ModelNotReady until it is loaded."""
        return self.ready_detector().card

    def predict_url(
        self,
        url: str,
        timeout: float | None = None,
        options: DetectOptions = DEFAULT_OPTIONS,
        alive: Alive | None = None,
    ) -> Prediction:
        """Options are checked before fetching, so a bad request never costs a download.

        ``alive`` is asked before the model runs (see :class:`InferenceThread`).
        """
        detector = self.ready_detector(options.model)
        options.checked(detector.card)
        started = time.perf_counter()
        data = self.fetcher.fetch(url, timeout).data
        return self._predict(detector, data, options, {"fetch": time.perf_counter() - started}, alive)

    def predict_bytes(
        self, data: bytes, options: DetectOptions = DEFAULT_OPTIONS, alive: Alive | None = None
    ) -> Prediction:
        detector = self.ready_detector(options.model)
        return self._predict(detector, data, options.checked(detector.card), {}, alive)

    def _predict(
        self,
        detector: Detector,
        data: bytes,
        options: DetectOptions,
        timings: dict[str, float],
        alive: Alive | None,
    ) -> Prediction:
        started = time.perf_counter()
        max_side = self._max_side(detector)
        opened, planned_size = open_near(data, self.settings.max_image_pixels, max_side)
        cost = decode_cost(opened)
        with self.decode_budget.reserve(cost, self.settings.fetch.deadline):
            upright = finish(opened)
            original_size = stored_size(planned_size, upright)
            image = limit_side(upright, max_side)
            preview = limit_side(upright, PREVIEW_MAX_SIDE)
            del opened, upright
            release_freed_memory(cost)
        tensor = to_tensor(image)
        decoded_at = time.perf_counter()
        detections = options.select(detector.detect(tensor, options.threshold, options.masks, alive))
        done = time.perf_counter()
        timings = {**timings, "decode": decoded_at - started, "inference": done - decoded_at}
        return Prediction(detections, image, preview, original_size, detector, timings)
