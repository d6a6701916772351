"""The demo page in a real browser: Debian's headless Chromium driven by Playwright.

Loads ``/`` from the running service, submits an image URL served from
127.0.0.1 and an uploaded file, and checks that boxes and labels appear and
that the threshold slider filters them. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is not installed: run `apt-get install chromium` (.ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, service):
    context = browser.new_context(viewport={"width": 1100, "height": 1200})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{service.http_url}/")
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _tags_overlap(page) -> int:
    """How many pairs of label tags cover each other."""
    return page.evaluate("""() => {
        const boxes = [...document.querySelectorAll('#overlay rect.tag')].map((r) => r.getBBox());
        let pairs = 0;
        boxes.forEach((a, i) => boxes.slice(i + 1).forEach((b) => {
            if (a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height) pairs++;
        }));
        return pairs;
    }""")


def _labels(page) -> list[str]:
    return page.locator("#detections tbody tr.detection:not(.hidden) td:nth-child(2)").all_inner_texts()


def test_url_detection_draws_boxes_and_lists_labels(page, image_server):
    page.wait_for_function("document.querySelector('#model-line').textContent.includes('yolov5s')")
    assert "AGPL-3.0" in page.locator("#model-license").inner_text()
    assert page.locator("#threshold").input_value() == "0.3"
    page.fill("#url", image_server.url("/images/darknet_dog.jpg"))
    page.click("#detect-url")
    page.wait_for_selector("#overlay rect.box")
    labels = _labels(page)
    assert {"dog", "bicycle"} <= set(labels)
    assert page.locator("#overlay rect.box").count() == len(labels)
    assert "dog" in page.locator("#overlay").inner_html()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-url.png"), full_page=True)

    assert page.locator("#overlay rect.tag").count() == len(labels)
    assert _tags_overlap(page) == 0
    assert page.locator("#status").inner_text() == f"{len(labels)} objects scoring at least 0.30"

    page.locator("#threshold").fill("0.95")
    page.wait_for_function("document.querySelectorAll('#overlay rect.box').length < %d" % len(labels))
    assert len(_labels(page)) < len(labels)
    assert "scoring at least 0.95" in page.locator("#status").inner_text()

    page.locator("#threshold").fill("1")
    page.wait_for_function("document.querySelectorAll('#overlay rect.box').length == 0")
    assert "lower the threshold" in page.locator("#status").inner_text()


def test_uploaded_file_is_detected(page, shared_dir):
    page.set_input_files("#file", str(shared_dir / "eval" / "images" / "darknet_giraffe.jpg"))
    page.wait_for_selector("#overlay rect.box")
    assert "giraffe" in _labels(page)
    assert page.locator("#image").get_attribute("src").startswith("blob:")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-upload.png"), full_page=True)


def test_errors_are_shown_not_thrown_and_clear_the_previous_result(page, image_server):
    page.fill("#url", image_server.url("/images/darknet_dog.jpg"))
    page.click("#detect-url")
    page.wait_for_selector("#overlay rect.box")
    page.fill("#url", "http://10.0.0.1/secret.jpg")
    page.click("#detect-url")
    page.wait_for_selector("#status.error")
    assert "address_not_allowed" in page.locator("#status").inner_text()
    assert page.locator("#result").is_hidden()
    assert page.locator("#overlay rect").count() == 0 and page.locator("#detections tbody tr").count() == 0


def test_a_dropped_file_is_detected(page, shared_dir):
    """A synthesised drop event carrying the file, as a browser sends one when a file is dragged in."""
    data = list((shared_dir / "eval" / "images" / "darknet_horses.jpg").read_bytes())
    page.evaluate("""(bytes) => {
        const file = new File([new Uint8Array(bytes)], 'horses.jpg', {type: 'image/jpeg'});
        const transfer = new DataTransfer();
        transfer.items.add(file);
        const drop = document.getElementById('drop');
        drop.dispatchEvent(new DragEvent('dragover', {dataTransfer: transfer, bubbles: true, cancelable: true}));
        drop.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }""", data)
    page.wait_for_selector("#overlay rect.box")
    assert "horse" in _labels(page)
    assert page.locator("#image").get_attribute("src").startswith("blob:")
    assert not page.locator("#drop").evaluate("(el) => el.classList.contains('over')")
