"""The /v1 HTTP API and detection.v1 gRPC service against the real running service (YOLOv5s)."""

from __future__ import annotations

import io

import grpc
import pytest
import requests
from PIL import Image

from model.card import ModelCard
from exporters.coco_names import COCO_80
from model.cpu import cpu_flags
from model.precision import choose
from harness.service_process import error_details

DOG = "/images/darknet_dog.jpg"
PERSON = "/images/darknet_person.jpg"


@pytest.fixture(scope="module")
def dog_bytes(shared_dir) -> bytes:
    return (shared_dir / "eval" / "images" / "darknet_dog.jpg").read_bytes()


def detect(service, payload: dict, **kwargs) -> requests.Response:
    return requests.post(f"{service.http_url}/v1/detect", json=payload, timeout=60, **kwargs)


def test_detect_by_url_gives_boxes_scores_and_the_predict_labels(service, image_server):
    url = image_server.url(DOG)
    response = detect(service, {"url": url})
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["model", "image", "threshold", "detections", "timing_ms"]
    assert body["model"]["name"] == "yolov5s" and body["model"]["masks_available"] is False
    assert body["image"] == {"width": 768, "height": 576}
    assert body["threshold"] == body["model"]["default_threshold"]
    assert [d["label"] for d in body["detections"]] == service.predict_http(url)[1]["objects"]
    scores = [d["score"] for d in body["detections"]]
    assert scores == sorted(scores, reverse=True) and min(scores) >= body["threshold"]
    for d in body["detections"]:
        x1, y1, x2, y2 = d["box"]
        assert 0 <= x1 < x2 <= 768 and 0 <= y1 < y2 <= 576
    dog = next(d for d in body["detections"] if d["label"] == "dog")
    # The dog sits in the lower left of this picture.
    assert dog["box"][0] < 300 and dog["box"][1] > 150
    assert set(body["timing_ms"]) == {"fetch", "decode", "queue", "inference"}


def test_options_threshold_classes_and_max_detections(service, image_server):
    url = image_server.url(DOG)
    low = detect(service, {"url": url, "threshold": 0.1}).json()["detections"]
    high = detect(service, {"url": url, "threshold": 0.7}).json()["detections"]
    assert len(low) > len(high) > 0
    assert all(d["score"] >= 0.7 for d in high) and high == [d for d in low if d["score"] >= 0.7]
    only = detect(service, {"url": url, "threshold": 0.1, "classes": ["dog", "bicycle"]}).json()["detections"]
    assert only and {d["label"] for d in only} <= {"dog", "bicycle"}
    assert only == [d for d in low if d["label"] in ("dog", "bicycle")]
    capped = detect(service, {"url": url, "threshold": 0.1, "max_detections": 2}).json()["detections"]
    assert capped == low[:2]


@pytest.mark.parametrize(
    "payload, fragment",
    [
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"max_detections": 0}, "max_detections"),
        ({"max_detections": 2.5}, "max_detections"),
        ({"classes": "dog"}, "classes"),
        ({"classes": []}, "at least one"),
        ({"masks": "yes"}, "masks"),
        ({"masks": True}, "Mask R-CNN"),
        ({"treshold": 0.5}, "unknown field(s) treshold"),
    ],
)
def test_bad_options_get_400_saying_what_is_wrong(service, image_server, payload, fragment):
    before = service.metric()
    response = detect(service, {"url": image_server.url(DOG), **payload})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and fragment in error["message"]
    assert service.metric() == before, "/v1 calls must not move the /predict counter"


def test_unknown_classes_list_the_valid_choices(service, image_server):
    response = detect(service, {"url": image_server.url(DOG), "classes": ["dog", "unicorn"]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "'unicorn'" in error["message"] and error["choices"] == list(COCO_80)


def test_raw_and_multipart_uploads_answer_like_the_url(service, image_server, dog_bytes):
    by_url = detect(service, {"url": image_server.url(DOG), "threshold": 0.2}).json()
    raw = requests.post(f"{service.http_url}/v1/detect?threshold=0.2", data=dog_bytes,
                        headers={"Content-Type": "image/jpeg"}, timeout=60)
    form = requests.post(f"{service.http_url}/v1/detect", data={"threshold": "0.2"},
                         files={"image": ("dog.jpg", dog_bytes, "image/jpeg")}, timeout=60)
    for response in (raw, form):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["detections"] == by_url["detections"] and body["image"] == by_url["image"]
        assert "fetch" not in body["timing_ms"]


@pytest.mark.parametrize(
    "kwargs, status, code",
    [
        ({"data": b"not an image", "headers": {"Content-Type": "image/png"}}, 415, "unsupported_media_type"),
        ({"data": b"", "headers": {"Content-Type": "image/png"}}, 400, "invalid_request"),
        ({"data": b"url=x", "headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type"),
        ({"files": {"picture": ("a.jpg", b"x", "image/jpeg")}}, 400, "invalid_request"),
        ({"data": b"\xff" * (20 * 1024 * 1024 + 1), "headers": {"Content-Type": "image/jpeg"}}, 413,
         "request_too_large"),
    ],
)
def test_bad_uploads_get_clear_errors(service, kwargs, status, code):
    response = requests.post(f"{service.http_url}/v1/detect", timeout=60, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_batch_answers_in_order_with_per_item_errors(service, image_server):
    urls = [image_server.url(DOG), "ftp://example.com/a.jpg", image_server.url(PERSON),
            image_server.url("/case/not-an-image.txt")]
    response = requests.post(f"{service.http_url}/v1/detect:batch", json={"urls": urls, "classes": ["dog"]},
                             timeout=120)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["url"] for r in results] == urls
    assert [d["label"] for d in results[0]["detections"]] == ["dog"]
    assert results[1]["error"]["code"] == "invalid_url"
    assert {d["label"] for d in results[2]["detections"]} == {"dog"}
    assert results[3]["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    "payload, fragment",
    [({"urls": []}, "1 to 16"), ({"urls": ["http://x/"] * 17}, "1 to 16"), ({"urls": "http://x/"}, "urls"),
     ({"urls": ["http://x/"], "classes": ["unicorn"]}, "unicorn")],
)
def test_bad_batches_are_refused_whole(service, payload, fragment):
    response = requests.post(f"{service.http_url}/v1/detect:batch", json=payload, timeout=60)
    assert response.status_code == 400 and fragment in response.json()["error"]["message"]


def test_annotated_png_has_the_image_size_and_drawn_boxes(service, image_server, dog_bytes):
    response = requests.get(f"{service.http_url}/v1/detect/annotated",
                            params={"url": image_server.url(DOG), "classes": "dog"}, timeout=60)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    drawn = Image.open(io.BytesIO(response.content)).convert("RGB")
    original = Image.open(io.BytesIO(dog_bytes)).convert("RGB")
    assert drawn.size == original.size
    box = detect(service, {"url": image_server.url(DOG), "classes": ["dog"]}).json()["detections"][0]["box"]
    x1, y1, x2, y2 = (round(v) for v in box)
    changed = [drawn.getpixel((x, (y1 + y2) // 2)) != original.getpixel((x, (y1 + y2) // 2)) for x in (x1, x1 + 1)]
    assert any(changed), "the dog's box edge should be drawn"
    assert drawn.getpixel((x2 + 20, 5)) == original.getpixel((x2 + 20, 5)) or x2 + 20 >= original.width
    posted = requests.post(f"{service.http_url}/v1/detect/annotated?classes=dog", data=dog_bytes,
                           headers={"Content-Type": "image/jpeg"}, timeout=60)
    assert posted.status_code == 200 and posted.content == response.content


def test_annotated_errors_are_json(service):
    response = requests.get(f"{service.http_url}/v1/detect/annotated", timeout=30)
    assert response.status_code == 400 and "url" in response.json()["error"]["message"]
    response = requests.get(f"{service.http_url}/v1/detect/annotated",
                            params={"url": "http://10.1.2.3/a.jpg"}, timeout=30)
    assert response.status_code == 403 and response.json()["error"]["code"] == "address_not_allowed"


def test_model_endpoint_and_page(service, yolov5_dir):
    model = requests.get(f"{service.http_url}/v1/model", timeout=30).json()
    assert model["name"] == "yolov5s" and model["classes"] == list(COCO_80)
    assert model["license"].startswith("AGPL-3.0")
    # The fastest numerics YOLOv5s's export verified that this CPU runs fast (int8 on VNNI or AMX).
    choice = choose(ModelCard.read(yolov5_dir), "auto", cpu_flags())
    assert (model["precision"], model["precision_reason"]) == (choice.precision, choice.reason)
    page = requests.get(f"{service.http_url}/", timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert requests.get(f"{service.http_url}{asset}", timeout=30).status_code == 200
    assert "http://" not in page.text.replace("http://www.w3.org/2000/svg", ""), "the page must work offline"


def _detector_stub(service):
    from proto import detection_pb2_grpc

    channel = grpc.insecure_channel(service.grpc_target)
    return channel, detection_pb2_grpc.DetectorStub(channel)


def test_grpc_detect_matches_http(service, image_server):
    from proto import detection_pb2

    url = image_server.url(PERSON)
    http = detect(service, {"url": url, "threshold": 0.2, "classes": ["dog", "person"], "max_detections": 3}).json()
    channel, stub = _detector_stub(service)
    with channel:
        reply = stub.Detect(detection_pb2.DetectRequest(url=url, threshold=0.2, classes=["dog", "person"],
                                                        max_detections=3), timeout=60)
        model = stub.GetModel(detection_pb2.GetModelRequest(), timeout=10)
    assert reply.model.name == "yolov5s" and list(model.classes) == list(COCO_80)
    assert (model.precision, model.precision_reason) == (http["model"]["precision"], requests.get(f"{service.http_url}/v1/model", timeout=30).json()["precision_reason"])
    assert reply.model.precision_reason == ""  # the details are GetModel's, as /v1/model's are
    assert model.license == http["model"]["license"] and model.license.startswith("AGPL-3.0")
    assert (reply.image.width, reply.image.height) == (http["image"]["width"], http["image"]["height"])
    assert [d.label for d in reply.detections] == [d["label"] for d in http["detections"]]
    for got, want in zip(reply.detections, http["detections"]):
        assert got.score == pytest.approx(want["score"], abs=1e-4)
        assert [got.box.x1, got.box.y1, got.box.x2, got.box.y2] == pytest.approx(want["box"], abs=0.01)
        assert not got.HasField("mask")
    assert reply.threshold == pytest.approx(0.2)
    assert set(reply.timing_ms) == {"fetch", "decode", "queue", "inference"}
    # Consistent with HTTP: the class list only from GetModel, timings to 0.1 ms.
    assert list(reply.model.classes) == [] and "classes" not in http["model"]
    assert all(value == round(value, 1) for value in reply.timing_ms.values())


@pytest.mark.parametrize(
    "fields, fragment",
    [({"threshold": 2.0}, "threshold"), ({"classes": ["unicorn"]}, "unicorn"),
     ({"max_detections": 0}, "max_detections"), ({"masks": True}, "Mask R-CNN")],
)
def test_grpc_detect_refuses_bad_options(service, image_server, fields, fragment):
    """The status names the field at fault (BadRequest), and an unknown class lists the valid ones."""
    from proto import detection_pb2

    channel, stub = _detector_stub(service)
    with channel, pytest.raises(grpc.RpcError) as raised:
        stub.Detect(detection_pb2.DetectRequest(url=image_server.url(DOG), **fields), timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in raised.value.details()
    details = error_details(raised.value)
    assert details["reason"] == "invalid_request"
    assert list(details["fields"]) == [next(iter(fields))]
    if "classes" in fields:
        assert "person" in details["metadata"]["choices"].split(",")


def test_grpc_detect_maps_fetch_errors_like_predict(service):
    from proto import detection_pb2

    channel, stub = _detector_stub(service)
    with channel, pytest.raises(grpc.RpcError) as raised:
        stub.Detect(detection_pb2.DetectRequest(url="http://192.168.0.1/a.jpg"), timeout=30)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
