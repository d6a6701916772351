"""Masks end to end on Mask R-CNN (random init, the only weights this machine has), in-process.

The served masks must be exactly what eager torchvision computes for the
same weights, encoded as COCO RLE at the original image's size.
"""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
import torch
from grpc_health.v1 import health
from PIL import Image
from pycocotools import mask as coco_mask

from exporters import builder as export, maskrcnn
from model.coco import PLACEHOLDERS
from common.settings import Settings
from serving.images import decode_near, limit_side, to_tensor
from serving import DetectionService, lifecycle

MIN_SIZE, MAX_SIZE = 320, 512


@pytest.fixture(scope="module")
def mask_model(tmp_path_factory):
    torch.manual_seed(4321)
    eager = maskrcnn.build_eager("random")
    out = tmp_path_factory.mktemp("maskrcnn-masks")
    torch.save(eager.state_dict(), out / "weights.pt")
    export.export_maskrcnn(out / "model", weights_file=out / "weights.pt", min_size=MIN_SIZE, max_size=MAX_SIZE)
    return out / "model", maskrcnn.set_input_size(eager, MIN_SIZE, MAX_SIZE).eval()


def _service(model_dir, max_side=None) -> DetectionService:
    return lifecycle.load_now(Settings(model_dir=model_dir, torch_threads=2, max_side=max_side))


@pytest.fixture(scope="module")
def client(mask_model):
    from http_service.app import create_app

    # No pre-shrink: the eager reference sees the full-size image too.
    return create_app(_service(mask_model[0], max_side=10_000)).test_client()


@pytest.fixture(scope="module")
def photo(shared_dir) -> bytes:
    return (shared_dir / "eval" / "images" / "darknet_dog.jpg").read_bytes()


def _decode(rle: dict) -> np.ndarray:
    return coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)


def _expected(eager, photo: bytes, max_side: int = 10_000) -> list[tuple[str, np.ndarray]]:
    """Eager torchvision's answer on the picture the service prepares, filtered the way it filters."""
    names = maskrcnn.categories()
    with torch.inference_mode():
        found = eager([to_tensor(limit_side(decode_near(photo, 10**8, max_side)[0], max_side))])[0]
    rows = [(names[label], score, (mask[0] >= 0.5).numpy())
            for label, score, mask in zip(found["labels"].tolist(), found["scores"].tolist(), found["masks"])
            if names[label] not in PLACEHOLDERS]
    rows.sort(key=lambda row: row[1], reverse=True)
    return [(label, mask) for label, _, mask in rows]


def test_served_masks_are_eager_torchvisions_masks_as_coco_rle(client, mask_model, photo):
    response = client.post("/v1/detect?threshold=0&masks=true&max_detections=20", data=photo,
                           content_type="image/jpeg")
    assert response.status_code == 200, response.json
    body = response.json
    assert body["model"]["masks_available"] and body["model"]["random_init"] is False
    expected = _expected(mask_model[1], photo)[:20]
    assert len(body["detections"]) == len(expected) > 0
    for detection, (label, mask) in zip(body["detections"], expected):
        assert detection["label"] == label
        assert detection["mask"]["size"] == [576, 768]
        assert np.array_equal(_decode(detection["mask"]), mask)


def test_without_masks_nothing_is_computed_or_sent(client, photo):
    response = client.post("/v1/detect?threshold=0&max_detections=5", data=photo, content_type="image/jpeg")
    assert response.status_code == 200
    assert all("mask" not in d for d in response.json["detections"])


def test_masks_of_a_shrunk_image_come_back_at_the_original_size(mask_model, photo):
    from http_service.app import create_app

    small = create_app(_service(mask_model[0], max_side=384)).test_client()
    expected = _expected(mask_model[1], photo, max_side=384)[:5]
    response = small.post("/v1/detect?threshold=0&masks=true&max_detections=5", data=photo,
                          content_type="image/jpeg")
    assert response.status_code == 200
    assert len(response.json["detections"]) == len(expected) > 0
    for detection, (label, mask) in zip(response.json["detections"], expected):
        assert mask.shape == (288, 384) and detection["label"] == label
        assert detection["mask"]["size"] == [576, 768]
        upscaled = np.asarray(Image.fromarray(mask).resize((768, 576), Image.Resampling.NEAREST))
        assert np.array_equal(_decode(detection["mask"]), upscaled)
        x1, y1, x2, y2 = detection["box"]
        assert 0 <= x1 <= x2 <= 768 and 0 <= y1 <= y2 <= 576


def test_annotated_png_tints_the_masks(client, photo):
    plain = client.post("/v1/detect/annotated?threshold=0&max_detections=3", data=photo, content_type="image/jpeg")
    tinted = client.post("/v1/detect/annotated?threshold=0&max_detections=3&masks=true", data=photo,
                         content_type="image/jpeg")
    assert plain.status_code == tinted.status_code == 200
    a = np.asarray(Image.open(io.BytesIO(plain.data)).convert("RGB"), dtype=np.int16)
    b = np.asarray(Image.open(io.BytesIO(tinted.data)).convert("RGB"), dtype=np.int16)
    assert a.shape == b.shape == (576, 768, 3)
    assert (np.abs(a - b).sum(axis=2) > 0).sum() > 100, "masks should tint some pixels"


def test_grpc_detect_sends_the_same_masks(mask_model, client, photo, tmp_path):
    from grpc_service.server import build_server
    from common.settings import FetchPolicy
    from harness.ports import free_port
    from proto import detection_pb2, detection_pb2_grpc
    from harness.image_server import ImageServer

    (tmp_path / "darknet_dog.jpg").write_bytes(photo)
    images = ImageServer(tmp_path)
    images.start()
    service = lifecycle.load_now(Settings(model_dir=mask_model[0], torch_threads=2, max_side=10_000,
                                          fetch=FetchPolicy(allowlist=("127.0.0.1",))))
    port = free_port()
    server = build_server(service, health.HealthServicer(), f"127.0.0.1:{port}", 2)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = detection_pb2_grpc.DetectorStub(channel).Detect(
                detection_pb2.DetectRequest(url=images.url("/images/darknet_dog.jpg"), threshold=0, max_detections=4,
                                            masks=True),
                timeout=60,
            )
    finally:
        server.stop(0)
        images.stop()
    http = client.post("/v1/detect?threshold=0&masks=true&max_detections=4", data=photo,
                       content_type="image/jpeg").json["detections"]
    assert [d.label for d in reply.detections] == [d["label"] for d in http]
    for got, want in zip(reply.detections, http):
        assert [got.mask.height, got.mask.width] == want["mask"]["size"]
        assert got.mask.counts == want["mask"]["counts"]
