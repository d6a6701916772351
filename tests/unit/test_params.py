"""How HTTP requests become an image source and options (no model needed)."""

from __future__ import annotations

import io

import pytest
from flask import Flask, request

from http_service.params import ImageSource, image_request, options_from_fields
from common.errors import ImageTooLarge, InvalidRequest, UnsupportedMediaType
from serving.options import DetectOptions

APP = Flask(__name__)


def parse(limit: int = 1000, **kwargs) -> tuple[ImageSource, DetectOptions]:
    with APP.test_request_context("/v1/detect", method="POST", **kwargs):
        return image_request(request, limit)


def test_json_url_and_typed_options():
    source, options = parse(json={"url": "http://a/b.jpg", "threshold": 0.5, "classes": ["dog"], "masks": True})
    assert source == ImageSource(url="http://a/b.jpg")
    assert options == DetectOptions(threshold=0.5, classes=("dog",), masks=True)


def test_query_options_beside_a_json_body_are_refused_not_ignored():
    with pytest.raises(InvalidRequest, match="in the body"):
        parse(json={"url": "http://a/b.jpg"}, query_string={"threshold": "0.5"})


def test_raw_body_takes_its_options_from_the_query_string():
    source, options = parse(data=b"\x89PNG", content_type="image/png",
                            query_string="classes=person,dog&classes=cat&max_detections=5&masks=false")
    assert source == ImageSource(data=b"\x89PNG")
    assert options == DetectOptions(classes=("person", "dog", "cat"), max_detections=5, masks=False)


def test_multipart_file_and_form_fields():
    source, options = parse(data={"image": (io.BytesIO(b"abc"), "a.jpg"), "threshold": "0.25"},
                            content_type="multipart/form-data")
    assert source == ImageSource(data=b"abc") and options.threshold == 0.25


@pytest.mark.parametrize(
    "query, fragment",
    [("threshold=high", "threshold"), ("threshold=nan", "threshold"), ("max_detections=2.5", "max_detections"),
     ("masks=yes", "masks"), ("colour=red", "unknown parameter(s) colour")],
)
def test_text_options_are_parsed_strictly(query, fragment):
    from werkzeug.datastructures import MultiDict
    from urllib.parse import parse_qsl

    with pytest.raises(InvalidRequest, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        options_from_fields(MultiDict(parse_qsl(query)))


def test_upload_limits_and_content_types():
    with pytest.raises(ImageTooLarge):
        parse(data={"image": (io.BytesIO(b"x" * 1001), "a.jpg")}, content_type="multipart/form-data", limit=1000)
    with pytest.raises(InvalidRequest, match="empty"):
        parse(data=b"", content_type="image/jpeg")
    with pytest.raises(UnsupportedMediaType):
        parse(data=b"url=x", content_type="application/x-www-form-urlencoded")
