"""The inference protocol's tensors and checks, without a model: framing, parameters, inputs, outputs.

tests/service/test_inference_protocol.py runs the same through the real service with Triton's and
KServe's clients.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from common.errors import InvalidRequest
from inference_protocol import model_io
from inference_protocol.tensors import InferRequest, InputTensor, OutputTensor, decode_bytes, encode_bytes
from model.coco import COCO_CLASSES


def request(*inputs: InputTensor, **parameters: object) -> InferRequest:
    return InferRequest(model="yolov5s", version="", inputs=list(inputs), parameters=parameters)


def urls(*values: str, shape: list[int] | None = None) -> InputTensor:
    return InputTensor("URL", "BYTES", shape or [len(values)], [v.encode() for v in values])


def test_bytes_elements_round_trip_and_bad_framing_is_named():
    elements = [b"", b"a", b"\x00" * 300]
    assert decode_bytes(encode_bytes(elements), 3, "IMAGE") == elements
    framed = encode_bytes(elements)
    for broken, words in ((framed[:-1], "more than the contents hold"), (framed + b"\x01", "end inside"),
                          (encode_bytes(elements[:2]), "hold 2")):
        with pytest.raises(InvalidRequest, match=words):
            decode_bytes(broken, 3, "IMAGE")


def test_parameters_are_v1s_options_and_unknown_ones_are_refused():
    options = model_io.options(request(urls("u"), threshold=0.5, max_detections=3, classes="dog, cat", masks=False,
                                       binary_data_output=True))
    assert (options.model, options.threshold, options.max_detections, options.classes, options.masks) == (
        "yolov5s", 0.5, 3, ("dog", "cat"), False)
    for bad, words in (({"treshold": 0.5}, "unknown parameter"), ({"threshold": "high"}, "number"),
                       ({"threshold": True}, "number"), ({"max_detections": 2.5}, "integer"),
                       ({"classes": 3}, "comma-separated"), ({"masks": "yes"}, "boolean")):
        with pytest.raises(InvalidRequest, match=words):
            model_io.options(request(urls("u"), **bad))


def test_exactly_one_bytes_input_of_b_elements_within_the_batch_limit():
    assert model_io.sources(request(urls("a", "b")), 16) == ["a", "b"]
    with pytest.raises(InvalidRequest, match=r"shape \[B\]"):  # the metadata says [-1]; Triton refuses [1, 1] too
        model_io.sources(request(urls("a", shape=[1, 1])), 16)
    images = InputTensor("IMAGE", "BYTES", [2], [b"\xff\xd8", b"\x89PNG"])
    assert model_io.sources(request(images), 16) == [b"\xff\xd8", b"\x89PNG"]
    cases = [
        (request(), "exactly one input"),
        (request(urls("a"), images), "not URL and IMAGE"),
        (request(InputTensor("PIXELS", "BYTES", [1], [b"x"])), "unknown input"),
        (request(InputTensor("URL", "FP32", [1], [])), "must be BYTES"),
        (request(urls("a", "b", shape=[2, 1, 1])), "shape"),
        (request(urls("a", shape=[0])), "shape"),
        (request(InputTensor("URL", "BYTES", [2], [b"a"])), "holds 1"),
        (request(urls(*"abc")), "at most 2"),
        (request(InputTensor("URL", "BYTES", [1], [b"\xff"])), "UTF-8"),
        (request(InputTensor("IMAGE", "BYTES", [1], [b""])), "empty"),
    ]
    for bad, words in cases:
        with pytest.raises(InvalidRequest, match=words):
            model_io.sources(bad, 2)


def _prediction(*found: tuple[str, float]) -> SimpleNamespace:
    detections = [SimpleNamespace(label=label, score=score, mask=None) for label, score in found]
    return SimpleNamespace(
        detections=detections,
        image_box=lambda d: [1.0, 2.0, 3.0, 4.0 + d.score],
        image_mask_rle=lambda d: {"size": [2, 3], "counts": "06"},
    )


def test_outputs_follow_efficientnms_padded_to_the_largest_count():
    detector = SimpleNamespace(card=SimpleNamespace(categories=list(COCO_CLASSES)))
    predictions = [_prediction(("dog", 0.9), ("car", 0.5)), _prediction(), _prediction(("person", 0.7))]
    names = [*model_io.OUTPUTS, model_io.MASKS]
    tensors = {t.name: t for t in model_io.outputs(detector, predictions, names)}  # type: ignore[arg-type]
    assert tensors["num_detections"].data.tolist() == [[2], [0], [1]]
    assert tensors["detection_boxes"].shape == [3, 2, 4] and tensors["detection_boxes"].data.dtype == np.float32
    assert tensors["detection_scores"].data.reshape(-1).tolist() == pytest.approx([0.9, 0.5, 0, 0, 0.7, 0])
    index = list(COCO_CLASSES).index
    assert tensors["detection_classes"].data.tolist() == [[index("dog"), index("car")], [-1, -1], [index("person"), -1]]
    assert tensors["detection_labels"].listed() == ["dog", "car", "", "", "person", ""]
    assert json.loads(tensors[model_io.MASKS].data[0, 0]) == {"size": [2, 3], "counts": "06"}
    assert [t.name for t in model_io.outputs(detector, predictions, ["detection_labels"])] == ["detection_labels"]


def test_raw_outputs_are_little_endian_row_major():
    tensor = OutputTensor("num_detections", "INT32", np.array([[1], [258]], np.int32))
    assert tensor.raw() == b"\x01\x00\x00\x00\x02\x01\x00\x00"
    labels = OutputTensor("detection_labels", "BYTES", np.array([[b"dog", b""]], dtype=object))
    assert labels.raw() == b"\x03\x00\x00\x00dog\x00\x00\x00\x00" and labels.shape == [1, 2]


def test_outputs_asked_for_must_exist_and_masks_need_the_parameter():
    options = model_io.options(request(urls("u")))
    asking = InferRequest(model="m", version="", inputs=[], outputs=["detection_masks"])
    with pytest.raises(InvalidRequest, match='set the "masks" parameter'):
        model_io.requested_outputs(asking, options)
    assert model_io.requested_outputs(request(urls("u")), options) == list(model_io.OUTPUTS)
