"""The per-process limits on their own: admission slots, the decode budget, first-frame decoding, the front's config."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from http_service.front.render import render_config
from serving.admission import Admission
from common.settings import ServerSettings, Settings
from serving.decode_budget import MIB, DecodeBudget
from common.errors import ImageTooLarge, Overloaded
from serving.images import decode_cost, finish, open_near
from harness.image_server import many_page_tiff


def test_admission_refuses_the_slot_after_the_last_at_once():
    admission = Admission(2)
    with admission.slot(), admission.slot():
        started = time.perf_counter()
        with pytest.raises(Overloaded) as refused:
            with admission.slot():
                pass
        assert time.perf_counter() - started < 1.0  # a refusal, not a wait (a wait would last until a slot frees)
        assert refused.value.retry_after == 1
    with admission.slot():
        pass


def test_an_image_bigger_than_the_whole_budget_is_refused_without_waiting():
    budget = DecodeBudget(100 * MIB)
    with pytest.raises(ImageTooLarge, match="MiB"):
        with budget.reserve(101 * MIB, timeout=10):
            pass
    assert budget.free == 100 * MIB


def test_decodes_wait_for_the_budget_and_give_up_as_busy():
    budget = DecodeBudget(100 * MIB)
    entered = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with budget.reserve(80 * MIB, timeout=1):
            entered.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    entered.wait(5)
    with pytest.raises(Overloaded):
        with budget.reserve(40 * MIB, timeout=0.2):
            pass
    with budget.reserve(20 * MIB, timeout=0.2):  # fits beside the holder
        pass
    threading.Timer(0.2, release.set).start()
    started = time.perf_counter()
    with budget.reserve(40 * MIB, timeout=5):
        waited = time.perf_counter() - started
    holder.join()
    assert 0.1 < waited < 4 and budget.free == 100 * MIB


@pytest.mark.parametrize(("mode", "bytes_per_pixel"), [("RGB", 3), ("L", 4), ("I;16", 10), ("RGBA", 15), ("F", 13)])
def test_decode_cost_counts_bytes_per_pixel_not_pixels(mode, bytes_per_pixel):
    assert decode_cost(Image.new(mode, (100, 50))) == 100 * 50 * bytes_per_pixel


def test_a_tiff_of_190000_pages_decodes_its_first_page_at_once():
    """Counting frames is quadratic: this file took 142 s of CPU when its frames were counted."""
    data = many_page_tiff(190_000)
    assert len(data) > 19_000_000  # 20 MB, as found
    started = time.process_time()
    image, size = open_near(data, 50_000_000, 640)
    picture = finish(image)
    assert time.process_time() - started < 1.0
    assert size == (1, 1) and picture.mode == "RGB" and picture.getpixel((0, 0)) == (128, 128, 128)


@pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
                    reason="nginx is installed by `make test`")
def test_the_rendered_front_configuration_is_valid_nginx(tmp_path):
    server = ServerSettings(run_dir=tmp_path, http_host="127.0.0.1", http_port=18080)
    config = render_config(server, Settings())
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    result = subprocess.run([nginx, "-t", "-p", str(config.parent), "-c", str(config), "-e", "stderr"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    text = config.read_text()
    assert "%{" not in text and "127.0.0.1:18080" in text and f"unix:{tmp_path}/http.sock" in text
