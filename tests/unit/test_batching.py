"""Requests that queue for a busy model share its next forward, each still answered with its own image's detections."""

from __future__ import annotations

import threading
import time
from typing import List, Tuple

import pytest
import torch
from torch import Tensor, nn

from common.errors import CallerGone, DeadlineExceeded
from exporters.builder import save
from exporters.coco_names import TORCHVISION_CATEGORIES
from model.batching import BatchPolicy, BatchQueue, Pending
from model.detector import Detector
from model.inference_thread import InferenceThread

PERSON, DOG, CAT = 1, 18, 17


class Split(nn.Module):
    """An export split like YOLOv5s's (letterbox, run_body, finish) whose answer shows what the body saw.

    Each image's top-left pixel is the label it is answered with; its score is a tenth of the
    number of images in the forward that ran it.
    """

    @torch.jit.export
    def letterbox(self, image: Tensor) -> Tuple[Tensor, float, int, int]:
        return image.unsqueeze(0), 1.0, 0, 0

    @torch.jit.export
    def run_body(self, batch: Tensor) -> List[Tensor]:
        images = torch.full_like(batch[:, :1, :1, :1], float(batch.shape[0]))
        return [torch.cat([batch[:, :1, :1, :1], images], dim=1)]

    @torch.jit.export
    def finish(self, maps: List[Tensor], height: int, width: int, scale: float, left: int, top: int
               ) -> Tuple[Tensor, Tensor, Tensor]:
        assert maps[0].shape[0] == 1
        boxes = torch.tensor([[0.0, 0.0, float(width), float(height)]])
        return boxes, maps[0][:, 0, 0, 0].long(), maps[0][:, 1, 0, 0] / 10.0

    def forward(self, image: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        batch, scale, left, top = self.letterbox(image)
        return self.finish(self.run_body(batch), image.shape[-2], image.shape[-1], scale, left, top)


def _export(folder, module: nn.Module):
    save(torch.jit.script(module), folder, name="split", architecture="test double", weights="none",
         categories=list(TORCHVISION_CATEGORIES), score_threshold=0.05)
    return folder


def _image(label: int, side: int = 8) -> Tensor:
    return torch.full((3, side, side), float(label))


class Busy:
    """Holds the model thread until released, so requests queue behind it."""

    def __init__(self, thread: InferenceThread):
        self._release = threading.Event()
        self._holder = threading.Thread(target=thread.call, args=(self._release.wait,))
        self._holder.start()

    def release(self) -> None:
        self._release.set()
        self._holder.join()


def _queued(detector: Detector, images: list[Tensor], alive=None) -> list[tuple[object, dict]]:
    """Detect each image from its own thread while the model is busy; each answer (or error) and waits."""
    busy = Busy(detector._thread)
    answers: list[tuple[object, dict]] = [(None, {}) for _ in images]

    def ask(index: int) -> None:
        waits: dict[str, float] = {}
        try:
            answers[index] = (detector.detect(images[index], alive=alive(index) if alive else None, waits=waits), waits)
        except Exception as error:
            answers[index] = (error, waits)

    askers = [threading.Thread(target=ask, args=(i,)) for i in range(len(images))]
    for asker in askers:
        asker.start()
        time.sleep(0.02)  # arrival order is the order given
    deadline = time.monotonic() + 5
    while len(detector._queue._items) < len(images) and time.monotonic() < deadline:
        time.sleep(0.01)
    busy.release()
    for asker in askers:
        asker.join(10)
    return answers


@pytest.fixture
def detector(tmp_path):
    return Detector.load(_export(tmp_path, Split()), batching=BatchPolicy(max_size=4))


def test_requests_queued_behind_a_forward_share_the_next_one_each_with_its_own_answer(detector):
    answers = _queued(detector, [_image(PERSON), _image(DOG), _image(CAT)])
    assert [[d.label for d in found] for found, _ in answers] == [["person"], ["dog"], ["cat"]]
    assert all(found[0].score == pytest.approx(0.3) for found, _ in answers)
    assert [waits["batch"] for _, waits in answers] == [3, 3, 3]
    assert all(waits["queue"] > 0 for _, waits in answers)


def test_a_batch_holds_only_images_of_one_size_and_at_most_max_size(detector):
    images = [_image(PERSON), _image(DOG, side=16), _image(CAT), _image(PERSON), _image(DOG), _image(CAT)]
    answers = _queued(detector, images)
    assert [waits["batch"] for _, waits in answers] == [4, 1, 4, 4, 4, 1]
    assert [found[0].label for found, _ in answers] == ["person", "dog", "cat", "person", "dog", "cat"]


def test_a_caller_gone_or_out_of_time_is_dropped_from_the_batch_and_the_rest_answered(detector):
    def alive(index: int):
        if index == 0:
            return lambda: False

        def out_of_time() -> bool:
            raise DeadlineExceeded("too late")

        return out_of_time if index == 1 else (lambda: True)

    answers = _queued(detector, [_image(PERSON), _image(DOG), _image(CAT), _image(PERSON)], alive)
    assert isinstance(answers[0][0], CallerGone) and isinstance(answers[1][0], DeadlineExceeded)
    assert [[d.label for d in found] for found, _ in answers[2:]] == [["cat"], ["person"]]
    assert [waits["batch"] for _, waits in answers[2:]] == [2, 2]


def test_batch_size_one_runs_each_request_alone(tmp_path):
    detector = Detector.load(_export(tmp_path, Split()), batching=BatchPolicy(max_size=1))
    answers = _queued(detector, [_image(PERSON), _image(DOG)])
    assert [found[0].score for found, _ in answers] == pytest.approx([0.1, 0.1])
    assert all("batch" not in waits for _, waits in answers)


class Whole(nn.Module):
    def forward(self, image: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        return torch.zeros(1, 4), torch.tensor([1]), torch.tensor([0.9])  # a person


def test_an_export_that_cannot_split_its_forward_is_never_batched(tmp_path):
    detector = Detector.load(_export(tmp_path, Whole()), batching=BatchPolicy(max_size=4))
    assert not detector.supports_batching and detector.batching.max_size == 1
    assert [d.label for d in detector.detect(_image(DOG))] == ["person"]


def test_the_oldest_waits_at_most_the_wait_for_others_to_join():
    queue = BatchQueue(BatchPolicy(max_size=2, wait_seconds=0.2))
    first = Pending(_image(PERSON), None, None)
    queue.put(first)
    started = time.perf_counter()
    assert queue.take() == [first]
    assert 0.15 < time.perf_counter() - started < 2.0
    assert queue.take() == []


def test_a_batch_that_fills_runs_at_once_without_waiting_out_the_wait():
    queue = BatchQueue(BatchPolicy(max_size=2, wait_seconds=5.0))  # long, so a busy machine cannot mistake it
    second, third = Pending(_image(DOG), None, None), Pending(_image(CAT), None, None)
    queue.put(second)
    threading.Timer(0.05, queue.put, args=(third,)).start()
    started = time.perf_counter()
    assert queue.take() == [second, third]
    assert time.perf_counter() - started < 2.5
    assert queue.take() == []


@pytest.mark.parametrize("max_size", [1, 4])
def test_decoded_pixels_are_shrunk_and_scaled_on_the_model_thread_alone_or_batched(tmp_path, max_size):
    detector = Detector.load(_export(tmp_path, Split()), batching=BatchPolicy(max_size=max_size))
    pixels = torch.full((3, 100, 200), 255, dtype=torch.uint8)  # a 200 x 100 picture as decoded
    found = detector.detect(pixels, threshold=0.0, max_side=50)
    # The body saw a float image of 50 x 25 in 0..1: its top-left pixel 1.0 is label 1, person.
    assert [(d.label, d.box) for d in found] == [("person", (0.0, 0.0, 50.0, 25.0))]
