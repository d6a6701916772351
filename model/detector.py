"""Load an exported detector and turn its raw output into named, thresholded detections.

Whatever was exported (Mask R-CNN or the offline CenterNet), the module takes
one RGB image tensor and returns boxes, integer labels and scores; the
sidecar names the labels. All torch work runs on the process's one
:class:`InferenceThread`: concurrent requests still fetch and decode in
parallel, but two forward passes never fight over the same few cores, and
OpenMP keeps one team of threads.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager

import torch

from model import precision as numerics
from model.batching import BatchPolicy, BatchQueue, Pending
from model.card import MODEL_FILE, ModelCard, sha256_of
from model.coco import PLACEHOLDERS
from model.compiled_body import CompiledBody, split_forward
from model.cpu import cpu_flags
from common.errors import CallerGone
from model.inference_thread import Alive, InferenceThread
from model.input_image import to_input
from model.vision_ops import load_vision_ops

log = logging.getLogger(__name__)


MASK_THRESHOLD = 0.5
# How much one forward moves Detector.forward_seconds: about the last five count.
FORWARD_AVERAGE_WEIGHT = 0.2


@dataclass(frozen=True)
class Detection:
    """One instance; ``box`` and ``mask`` are in the coordinates of the tensor the model was given."""

    label: str
    score: float
    box: tuple[float, float, float, float]
    mask: torch.Tensor | None = field(default=None, compare=False, repr=False)


class Detector:
    def __init__(
        self, module: torch.jit.ScriptModule, card: ModelCard, score_threshold: float | None = None,
        precision: str = numerics.FP32, thread: InferenceThread | None = None,
        numerics_context: Callable[[], ContextManager] = contextlib.nullcontext,
        body: CompiledBody | None = None, precision_reason: str = "", batching: BatchPolicy = BatchPolicy(),
    ):
        self._module = module
        self._body = body
        self.card = card
        # What the repository serves it as (model.repository): its folder's name and version.
        self.name = card.name
        self.version: int | None = None
        self.score_threshold = card.score_threshold if score_threshold is None else score_threshold
        self.precision = precision
        self.precision_reason = precision_reason
        self._thread = thread or InferenceThread()
        self._numerics = numerics_context
        self.warm = False
        # Seconds a request's forward takes, as recently measured (an exponential average; 0 until the
        # first request): what a deadline must leave for the model to be worth running (serving.deadline).
        self.forward_seconds = 0.0
        # Requests that queue while the model is busy share a forward (model.batching), where the export can.
        self.batching = batching if self.supports_batching else BatchPolicy()
        self._queue = BatchQueue(self.batching)

    @classmethod
    def load(
        cls, directory: Path, score_threshold: float | None = None, precision: str = "auto",
        thread: InferenceThread | None = None, batching: BatchPolicy = BatchPolicy(),
    ) -> "Detector":
        """Load and verify an export, then put it in the numerics chosen for this CPU.

        A checksum mismatch means a half-written or swapped file. ``precision``
        is DETECTOR_PRECISION (see model.precision). ``thread`` is the process's model
        thread, shared by every model it serves (model.repository); loading runs on the
        caller's thread, so a model being loaded holds up no request to another one.
        """
        return cls._load(Path(directory), score_threshold, precision, thread or InferenceThread(), batching)

    @classmethod
    def _load(
        cls, directory: Path, score_threshold: float | None, precision: str, thread: InferenceThread,
        batching: BatchPolicy,
    ) -> "Detector":
        card = ModelCard.read(directory)
        model_path = directory / MODEL_FILE
        actual = sha256_of(model_path)
        if actual != card.sha256:
            raise RuntimeError(f"{model_path} sha256 {actual} does not match its sidecar ({card.sha256})")
        load_vision_ops()  # the graphs call torchvision::nms (and Mask R-CNN's roi_align)
        with warnings.catch_warnings():
            # torch 2.14 calls TorchScript deprecated in favour of torch.export; it is still what loads here.
            warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit")
            module = torch.jit.load(str(model_path), map_location="cpu").eval()
        choice = numerics.choose(card, precision, cpu_flags())
        # On the model thread, like every torch operator that may run in parallel (see _warm_pass).
        context = thread.call(numerics.apply, module, choice.precision, card.bf16_mode, card.precision_module)
        body = CompiledBody.load(directory, card.int8) if choice.precision == numerics.INT8 else None
        detector = cls(module, card, score_threshold, choice.precision, thread, context, body, choice.reason, batching)
        if card.random_init:
            log.warning(
                "SERVING AN UNTRAINED MODEL: %s was exported from random weights; its answers are meaningless",
                card.name,
            )
        log.info(
            "serving model %s (%s, weights %s, licence: %s), score threshold %.3f, %s (%s)",
            card.name, card.architecture, card.weights, card.license or "not recorded", detector.score_threshold,
            choice.precision, choice.reason,
        )
        return detector

    def warm_up(self) -> None:
        """Forward passes so the first caller does not pay for lazy initialisation.

        TorchScript's profiling executor specialises a graph on its second run, so one is not enough.
        An int8 body's other shapes load on their first use (model.compiled_body.OnFirstUse): warming
        them all would keep every one in every process. Each pass queues on the model thread
        on its own, so requests to a model already serving wait at most one pass.
        """
        for height, width in [(480, 640), (480, 640)]:
            self._thread.call(self._warm_pass, height, width)
        self.warm = True

    def _warm_pass(self, height: int, width: int) -> None:
        """Model thread: one forward of a grey image, made here too.

        A tensor filled on the calling thread gives that thread an OpenMP team of its own for as
        long as it lives; with more OpenMP threads than cores, libgomp stops spinning between
        parallel regions. In a script that warms a detector up from its main thread, the int8 body
        then took twice as long (12 against 6 ms at 320x320, AMD EPYC, Zen 4, 2 threads).
        """
        self._forward(torch.full((3, height, width), 0.5))

    @property
    def supports_batching(self) -> bool:
        """The export splits its forward (letterbox, run_body, finish), so several images can share the body."""
        return all(hasattr(self._module, name) for name in ("letterbox", "run_body", "finish"))

    @property
    def supports_masks(self) -> bool:
        return self.card.masks and hasattr(self._module, "detect_masks")

    def raw(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The module's own output for ``image`` [3, H, W] in 0..1: boxes [N, 4], labels [N], scores [N]."""
        return self._thread.call(self._forward, image)

    def raw_with_masks(
        self, image: torch.Tensor, min_score: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """As :meth:`raw`, plus mask probabilities [N, 1, H, W], for detections scoring at least ``min_score``."""
        if not self.supports_masks:
            raise RuntimeError(f"{self.card.name} has no mask branch")
        return self._thread.call(self._forward_masks, image, min_score)

    def _forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.inference_mode(), self._numerics():
            if self._body is not None:
                return split_forward(self._module, self._body, image)
            return self._module(image)

    def _forward_masks(
        self, image: torch.Tensor, min_score: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.inference_mode(), self._numerics():
            return self._module.detect_masks(image, min_score)

    def detect(
        self,
        image: torch.Tensor,
        threshold: float | None = None,
        with_masks: bool = False,
        alive: Alive | None = None,
        waits: dict[str, float] | None = None,
        max_side: int | None = None,
    ) -> list[Detection]:
        """Detections at or above the threshold, highest score first, placeholders dropped.

        ``image``: float [3, H, W] in 0..1, as the model takes it, or uint8 pixels [3, H, W] as
        decoded, which the model thread shrinks to ``max_side`` (default: the export's) and scales
        (model.input_image); boxes are in the coordinates of the image the model took.
        ``alive``: skip the work if the caller has gone by the time the model is free;
        ``waits["queue"]``: the seconds spent waiting for it (InferenceThread.call), ``waits["batch"]``
        the number of images in the forward this one ran in.
        """
        side = self.card.max_side if max_side is None else max_side
        if with_masks or self.batching.max_size == 1:
            return self._thread.call(self._detect, image, threshold, with_masks, side, alive=alive, waits=waits)
        pending: Pending[list[Detection]] = Pending(image, threshold, alive, side)
        self._queue.put(pending)
        self._thread.call(self._drain)
        try:
            return pending.answer()
        finally:
            if waits is not None:
                waits.update(queue=pending.queued, batch=pending.batch_size)

    def _drain(self) -> None:
        """Model thread: run the oldest queued request with those that can share its forward (model.batching)."""
        taken = self._queue.take()
        started = time.perf_counter()
        batch = []
        for pending in taken:
            pending.queued = started - pending.submitted
            try:
                if pending.alive is not None and not pending.alive():
                    raise CallerGone("the caller went away before the model ran")
            except Exception as error:  # the caller's own check may raise its reason (DeadlineExceeded)
                pending.finish(error=error)
                continue
            batch.append(pending)
        if not batch:
            return
        try:
            answers = self._forward_batch([self._input(pending.image, pending.max_side) for pending in batch])
        except Exception as error:  # each caller raises it (serving maps it to a 500 and logs it)
            for pending in batch:
                pending.finish(error=error)
            return
        finally:
            self._measured(time.perf_counter() - started)
        for pending, answer in zip(batch, answers):
            pending.batch_size = len(batch)
            try:
                threshold = self.score_threshold if pending.threshold is None else pending.threshold
                pending.finish(self._named(*answer, masks=[None] * len(answer[1]), threshold=threshold))
            except Exception as error:
                pending.finish(error=error)

    def _forward_batch(self, images: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Images [3, H, W] of one size -> each one's boxes, labels, scores, from one forward of the body.

        Each is letterboxed alone, the batch N x 3 x H' x W' runs through the body (compiled or the
        export's own), and each image's slice of the maps is decoded alone.
        """
        with torch.inference_mode(), self._numerics():
            boxed = [self._module.letterbox(image) for image in images]
            batch = torch.cat([letterboxed for letterboxed, _, _, _ in boxed])
            maps = self._body(batch) if self._body is not None else self._module.run_body(batch)
            return [
                self._module.finish([m[i: i + 1] for m in maps], image.shape[-2], image.shape[-1], scale, left, top)
                for i, (image, (_, scale, left, top)) in enumerate(zip(images, boxed))
            ]

    @staticmethod
    def _input(image: torch.Tensor, max_side: int) -> torch.Tensor:
        """Model thread: uint8 pixels shrunk and scaled (model.input_image); a float image as it is."""
        return to_input(image, max_side) if image.dtype == torch.uint8 else image

    def _detect(self, image: torch.Tensor, threshold: float | None, with_masks: bool, max_side: int) -> list[Detection]:
        started = time.perf_counter()
        try:
            return self._detections(self._input(image, max_side), threshold, with_masks)
        finally:
            self._measured(time.perf_counter() - started)

    def _measured(self, seconds: float) -> None:
        """Fold one forward's time into ``forward_seconds`` (model thread only)."""
        weight = FORWARD_AVERAGE_WEIGHT if self.forward_seconds else 1.0
        self.forward_seconds += weight * (seconds - self.forward_seconds)

    def _detections(self, image: torch.Tensor, threshold: float | None, with_masks: bool) -> list[Detection]:
        threshold = self.score_threshold if threshold is None else threshold
        if with_masks:
            if not self.supports_masks:
                raise RuntimeError(f"{self.card.name} has no mask branch")
            boxes, labels, scores, probabilities = self._forward_masks(image, threshold)
            masks: list[torch.Tensor | None] = list(probabilities[:, 0] >= MASK_THRESHOLD)
        else:
            boxes, labels, scores = self._forward(image)
            masks = [None] * len(labels)
        return self._named(boxes, labels, scores, masks=masks, threshold=threshold)

    def _named(self, boxes: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor,
               masks: list[torch.Tensor | None], threshold: float) -> list[Detection]:
        """The module's output -> named detections at or above ``threshold``, best first, placeholders dropped."""
        names = self.card.categories
        found = []
        for box, label, score, mask in zip(boxes.tolist(), labels.tolist(), scores.tolist(), masks):
            if score < threshold or not 0 <= label < len(names) or names[label] in PLACEHOLDERS:
                continue
            found.append(Detection(names[label], float(score), tuple(box), mask))
        found.sort(key=lambda d: d.score, reverse=True)
        return found
