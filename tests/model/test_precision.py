"""The precision policy: which numerics run where, and proof that bf16 does not change the answers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from exporters import builder, int8, maskrcnn, sample_photos
from exporters.precision_check import check_bf16, photos_in
from model.card import ModelCard, sha256_of
from model.compiled_body import CompiledBody, constants_by_name, load_runner
from common.settings import Settings, cgroup_cpu_limit, usable_cpus
from model.cpu import cpu_flags
from model.detector import Detector
from serving.images import photo_tensor
from model import precision as numerics
from model.precision import BF16, FP32, INT8, choose, fast_bf16, fast_int8
from harness.predictors import score
from tests.conftest import CACHE_DIR

HERE_FAST = fast_bf16(cpu_flags()) is not None
needs_bf16 = pytest.mark.skipif(not HERE_FAST, reason="this CPU has no avx512_bf16/amx_bf16")
BOX_PX = 4.0
SCORE_TOL = 0.05
AMX = frozenset({"avx512f", "amx_bf16", "amx_tile", "amx_int8", "avx512_vnni", "avx512_bf16"})
ZEN4 = frozenset({"avx512f", "avx512_bf16", "avx512_vnni"})
HERE_INT8 = fast_int8(cpu_flags()) is not None

CARD = ModelCard(
    name="m", architecture="a", weights="w", categories=["x"], score_threshold=0.3, sha256="0",
    torch_version="t", torchvision_version="v", precision=BF16, precision_module="body",
)
INT8_CARD = replace(CARD, int8={"outcome": "int8: same answers as fp32", "requires_flags": ["avx512f"],
                                "packages": [{"shape": [640, 640], "file": "b.so", "sha256": "0"}]})


@pytest.mark.parametrize(
    "card, requested, flags, expected, why",
    [
        (CARD, "auto", AMX, BF16, "the export verified bf16; the CPU has amx_bf16"),
        (CARD, "auto", frozenset({"avx512f"}), FP32, "none of amx_bf16, avx512_bf16"),
        (CARD, "fp32", AMX, FP32, "DETECTOR_PRECISION=fp32"),
        (replace(CARD, precision=FP32, precision_check={"outcome": "fp32: bf16 changed 2 answer(s)"}), "auto", AMX,
         FP32, "bf16 changed 2 answer(s)"),
        (replace(CARD, precision=FP32), "bf16", AMX, BF16, "DETECTOR_PRECISION=bf16"),
        (replace(CARD, precision_module=""), "bf16", AMX, FP32, "has no bf16 path"),
        (replace(CARD, precision_module="", bf16_mode="autocast"), "auto", AMX, BF16, "the CPU has amx_bf16"),
        (INT8_CARD, "auto", AMX, INT8, "the export verified int8; the CPU has amx_int8"),
        (INT8_CARD, "auto", ZEN4, INT8, "the CPU has avx512_vnni"),
        (INT8_CARD, "auto", frozenset({"avx512f", "avx512_bf16"}), BF16, "not int8: this CPU has none of amx_int8"),
        (INT8_CARD, "auto", frozenset({"avx2", "avx_vnni"}), FP32,
         "compiled for CPU features this CPU lacks (avx512f)"),
        (INT8_CARD, "bf16", ZEN4, BF16, "DETECTOR_PRECISION=bf16"),
        (INT8_CARD, "fp32", ZEN4, FP32, "DETECTOR_PRECISION=fp32"),
        (INT8_CARD, "int8", ZEN4, INT8, "DETECTOR_PRECISION=int8"),
        (CARD, "int8", ZEN4, BF16, "int8 asked for, but the export has no int8 body"),
        (replace(CARD, int8={"outcome": "not kept: int8 changed 2 answer(s)"}), "auto", ZEN4, BF16,
         "not int8: the export has no int8 body (not kept: int8 changed 2 answer(s))"),
    ],
)
def test_choice_follows_sidecar_setting_and_cpu(card, requested, flags, expected, why):
    if flags & {"amx_bf16"} and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("oneDNN here cannot run bf16 at all")
    choice = choose(card, requested, flags)
    assert choice.precision == expected and why in choice.reason


def test_an_unknown_precision_setting_is_refused_at_start():
    with pytest.raises(ValueError, match="DETECTOR_PRECISION"):
        Settings.from_env({"DETECTOR_PRECISION": "fp16"})
    assert Settings.from_env({"DETECTOR_PRECISION": "BF16"}).precision == "bf16"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nflags\t\t: fpu avx512f amx_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(tmp_path / "cpuinfo") == {"fpu", "avx512f", "amx_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize(
    "files, limit",
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_threads_follow_the_cgroup_quota_and_the_affinity_mask(tmp_path, files, limit):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_limit(tmp_path) == limit
    allowed = len(os.sched_getaffinity(0))
    expected = allowed if limit is None else min(allowed, max(1, -(-limit // 1)))
    assert usable_cpus(tmp_path) == expected


def _answers(detector: Detector, photos: list[Path]) -> dict[str, list]:
    found = {}
    for photo in photos:
        image = photo_tensor(photo, detector.card.max_side)
        found[photo.name] = detector.detect(image, threshold=0.0)
    return found


@pytest.fixture(scope="module")
def yolov5_both(yolov5_dir, shared_dir):
    photos = sorted((shared_dir / "eval" / "images").iterdir())
    fp32 = Detector.load(yolov5_dir, precision="fp32")
    bf16 = Detector.load(yolov5_dir, precision="bf16")
    return photos, _answers(fp32, photos), _answers(bf16, photos), fp32.score_threshold


def test_yolov5s_sidecar_says_bf16_after_its_export_check(yolov5_dir):
    card = ModelCard.read(yolov5_dir)
    assert card.precision == BF16 and card.precision_module == "body"
    assert card.precision_check["outcome"] == "bf16: same answers as fp32"
    assert card.precision_check["worst_box_px"] <= BOX_PX and card.precision_check["worst_score"] <= SCORE_TOL


@needs_bf16
def test_yolov5s_bf16_gives_fp32s_answers_on_every_shared_photo(yolov5_both):
    """Above the threshold: the same labels, boxes within 4 px, scores within 0.05.

    A detection within 0.05 of the threshold may sit on either side of it in the other run.
    """
    photos, fp32, bf16, threshold = yolov5_both
    for photo in photos:
        ours, theirs = fp32[photo.name], bf16[photo.name]
        for mine, other in ((ours, theirs), (theirs, ours)):
            for d in (d for d in mine if d.score >= threshold):
                partners = [o for o in other if o.label == d.label
                            and max(abs(a - b) for a, b in zip(o.box, d.box)) <= BOX_PX
                            and abs(o.score - d.score) <= SCORE_TOL]
                assert partners or d.score < threshold + SCORE_TOL, (photo.name, d)


@needs_bf16
def test_yolov5s_bf16_keeps_the_acceptance_score(yolov5_both, shared_dir):
    photos, fp32, bf16, threshold = yolov5_both
    labels = json.loads((shared_dir / "eval" / "labels.json").read_text())

    def mean(found):
        return sum(score(labels[n], [d.label for d in found[n] if d.score >= threshold]) for n in labels) / len(labels)

    assert mean(bf16) == mean(fp32)


needs_int8 = pytest.mark.skipif(not HERE_INT8, reason="this CPU has no VNNI or AMX-INT8")


def test_yolov5s_export_keeps_its_int8_body_where_the_cpu_runs_it(yolov5_dir, shared_dir):
    card = ModelCard.read(yolov5_dir)
    if not HERE_INT8:
        assert card.int8["outcome"].startswith("not built: this CPU has none of") and "packages" not in card.int8
        return
    assert card.int8["outcome"] == "int8: same answers as fp32"
    expected = [(1, *shape) for shape in int8.SHAPES] + [(n, *shape) for shape, ns in int8.BATCHES.items() for n in ns]
    assert sorted((p.get("batch", 1), *p["shape"]) for p in card.int8["packages"]) == sorted(expected)
    for package in card.int8["packages"]:
        assert sha256_of(yolov5_dir / package["file"]) == package["sha256"]
    assert card.int8["shared_constants"] is True
    assert set(card.int8["requires_flags"]) <= cpu_flags()
    # Calibrated on PyPI photos, none of them an evaluation photo (by name or by content).
    shared = {p.name: sha256_of(p) for p in (shared_dir / "eval" / "images").iterdir()}
    calibration = sample_photos.download(CACHE_DIR, sample_photos.CALIBRATION)
    assert [p.name for p in calibration] == card.int8["calibration"]
    assert not {p.name for p in calibration} & set(shared)
    assert not {sha256_of(p) for p in calibration} & set(shared.values())


@pytest.fixture(scope="module")
def yolov5_int8(yolov5_dir, shared_dir):
    detector = Detector.load(yolov5_dir)
    assert detector.precision == INT8 and "the export verified int8" in detector.precision_reason
    return _answers(detector, sorted((shared_dir / "eval" / "images").iterdir()))


@needs_int8
def test_yolov5s_int8_gives_fp32s_answers_on_every_shared_photo(yolov5_both, yolov5_int8):
    """Above the threshold: the same labels, box edges within 4 px + 5% of the box, partners still answers.

    A partner must score at least the threshold less 0.1; an answer within 0.1 of the threshold
    may sit on either side of it in the other run.
    """
    photos, fp32, _, threshold = yolov5_both
    for photo in photos:
        ours, theirs = fp32[photo.name], yolov5_int8[photo.name]
        for mine, other in ((ours, theirs), (theirs, ours)):
            for d in (d for d in mine if d.score >= threshold):
                allowed = int8.BOX_PX + int8.BOX_REL * max(d.box[2] - d.box[0], d.box[3] - d.box[1])
                partners = [o for o in other if o.label == d.label
                            and max(abs(a - b) for a, b in zip(o.box, d.box)) <= allowed
                            and o.score >= threshold - int8.SCORE_TOL]
                assert partners or d.score < threshold + int8.SCORE_TOL, (photo.name, d)


@needs_int8
def test_yolov5s_int8_keeps_the_acceptance_score(yolov5_both, yolov5_int8, shared_dir):
    _, fp32, _, threshold = yolov5_both
    labels = json.loads((shared_dir / "eval" / "labels.json").read_text())

    def mean(found):
        return sum(score(labels[n], [d.label for d in found[n] if d.score >= threshold]) for n in labels) / len(labels)

    assert mean(yolov5_int8) >= mean(fp32)


@needs_int8
def test_the_int8_body_runs_each_input_in_the_smallest_shape_that_holds_it(yolov5_dir):
    """A 416x640 letterbox (a 1.54:1 photo, no package of its own) runs in the 448x640 package; the maps
    are cropped to its cells."""
    body = CompiledBody.load(yolov5_dir, ModelCard.read(yolov5_dir).int8)
    loaded = lambda: sorted((shape, n) for shape, runners in body._shapes for n, r in runners.items() if r.loaded)  # noqa: E731
    assert loaded() == []  # each package is mapped on its first use
    with torch.inference_mode():
        maps = body(torch.rand(1, 3, 416, 640))
        assert loaded() == [((448, 640), 1)]
        assert [tuple(m.shape) for m in maps] == [(1, 255, 52, 80), (1, 255, 26, 40), (1, 255, 13, 20)]
        # A camera's 320x320 frame at its own size, and a 256x256 one, in the 320x320 package.
        assert [tuple(m.shape) for m in body(torch.rand(1, 3, 320, 320))] == [(1, 255, 40, 40), (1, 255, 20, 20),
                                                                             (1, 255, 10, 10)]
        assert [tuple(m.shape) for m in body(torch.rand(1, 3, 256, 256))][0] == (1, 255, 32, 32)
        # Three camera frames of one size: a batch of two and one alone, the same maps as one by one.
        frames = torch.rand(3, 3, 320, 320)
        together = body(frames)
        alone = [body(frames[i: i + 1]) for i in range(3)]
        for level, m in enumerate(together):
            torch.testing.assert_close(m, torch.cat([maps_[level] for maps_ in alone]), atol=1e-3, rtol=1e-3)
        assert ((320, 320), 2) in loaded() and ((320, 320), 4) not in loaded()
        with pytest.raises(ValueError, match="no compiled shape holds a 672x640 input"):
            body(torch.rand(1, 3, 672, 640))


def test_int8_drops_the_fp32_weights_of_the_body_it_replaces(yolov5_dir):
    """The compiled body replaces ``precision_module``: its 29 MB of fp32 weights would only take memory.

    What the int8 path still calls on the module (letterbox, finish) keeps working.
    """
    card = ModelCard.read(yolov5_dir)
    module = torch.jit.load(str(yolov5_dir / "model.pt")).eval()
    body = getattr(module, card.precision_module)
    assert sum(t.numel() for t in body.parameters()) > 7_000_000
    numerics.apply(module, INT8, card.bf16_mode, card.precision_module)
    assert sum(t.numel() for t in [*body.parameters(), *body.buffers()]) == 0
    with torch.inference_mode():
        batch, scale, left, top = module.letterbox(torch.rand(3, 480, 640))
        assert tuple(batch.shape) == (1, 3, 480, 640)
        maps = [torch.full((1, 255, 480 // s, 640 // s), -20.0) for s in (8, 16, 32)]  # nothing scores
        boxes, labels, scores = module.finish(maps, 480, 640, scale, left, top)
    assert boxes.shape[0] == labels.shape[0] == scores.shape[0] == 0


@needs_int8
def test_every_int8_package_runs_on_another_packages_weights(yolov5_dir):
    """Handed the 640x640 package's weights, each package answers bit for bit as on its own copy."""
    card = ModelCard.read(yolov5_dir)
    source = torch._C._aoti.AOTIModelContainerRunnerCpu(str(yolov5_dir / "body-int8-640x640.so"), 1)
    shared = constants_by_name(source)
    assert sum(t.numel() for t in shared.values()) > 7_000_000
    with torch.inference_mode():
        for package in card.int8["packages"]:
            library = yolov5_dir / package["file"]
            example = torch.rand(package.get("batch", 1), 3, *package["shape"])
            for theirs, ours in zip(load_runner(library)([example]), load_runner(library, shared)([example])):
                torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


PACKAGE_MEMORY = """
import ctypes, sys, torch
from pathlib import Path
from model.card import ModelCard
from model.compiled_body import CompiledBody

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2

def allocated_mib():
    # Bytes malloc has handed out and not had back (this thread's arena and mapped chunks): unlike
    # RSS, not hidden by a package landing in heap that earlier activations freed.
    info = libc.mallinfo2()
    return (info.uordblks + info.hblkhd) / 2**20

directory = Path(sys.argv[1])
spec = {**ModelCard.read(directory).int8, "shared_constants": sys.argv[2] == "shared"}
SHAPES = [tuple(map(int, side.split("x"))) for side in sys.argv[3:]]
body = CompiledBody.load(directory, spec)
with torch.inference_mode():
    body(torch.rand(1, 3, 640, 640))
    before = allocated_mib()
    for _ in range(2):
        for shape in SHAPES:
            body(torch.rand(1, 3, *shape))
print(allocated_mib() - before)
"""


@needs_int8
def test_int8_packages_cost_a_process_no_copy_of_the_weights(yolov5_dir):
    """Four more shapes, each run twice: with the shared weights a process keeps no copy of them.

    On its own each package copies its 8 MB of weights into the process; handed the first
    package's, nothing. Nor does a package print AOTInductor's constant-folding warning then.
    """
    shapes = ["512x512", "480x640", "416x416", "320x320"]
    grown = {}
    for mode in ("own", "shared"):
        result = subprocess.run([sys.executable, "-c", PACKAGE_MEMORY, str(yolov5_dir), mode, *shapes],
                                capture_output=True, text=True, timeout=300, check=True)
        assert "constant_folding" not in result.stderr
        grown[mode] = float(result.stdout)
    assert grown["shared"] < grown["own"] - 4 * 6, grown


@needs_int8
@pytest.mark.skipif(shutil.which("g++") is None, reason="AOTInductor compiles with g++")
def test_int8_packages_of_one_graph_can_share_their_weights(tmp_path):
    """Each int8 convolution adds constants named ``x_scale`` and ``x_zp``; compiled with their names
    apart, a package's constants can all be taken out and handed to another package of the graph.
    """
    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.SiLU(),
                               torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.SiLU(), torch.nn.Conv2d(8, 4, 1)).eval()
    with torch.no_grad():
        quantized = int8.quantize(body, [torch.rand(1, 3, 64, 64) for _ in range(2)])

        def package(side: int, apart: bool) -> dict[str, object]:
            name = f"body-{side}-{'apart' if apart else 'alike'}"
            program = torch.export.export(quantized, (torch.zeros(1, 3, side, side),))
            with int8._constants_named_apart() if apart else contextlib.nullcontext():
                torch._inductor.aoti_compile_and_package(program, package_path=str(tmp_path / f"{name}.pt2"),
                                                         inductor_configs={"freezing": True})
            return {"file": int8._shared_library(tmp_path / f"{name}.pt2", tmp_path / f"{name}.so").name,
                    "shape": [side, side]}

        alike, apart, apart_small = package(32, False), package(64, True), package(32, True)
    runner = lambda entry: torch._C._aoti.AOTIModelContainerRunnerCpu(str(tmp_path / entry["file"]), 1)  # noqa: E731
    assert constants_by_name(runner(alike)) is None
    assert not int8.shares_constants(tmp_path, [alike, apart])
    assert int8.shares_constants(tmp_path, [apart, apart_small])
    source = runner(apart)  # the constants are views of its memory: it must outlive them
    shared = constants_by_name(source)
    assert {"x_scale", "x_scale_0", "x_zp", "x_zp_0"} <= shared.keys()
    with torch.inference_mode():
        example = torch.rand(1, 3, 32, 32)
        own = load_runner(tmp_path / apart_small["file"])([example])[0]
        given = load_runner(tmp_path / apart_small["file"], shared)([example])[0]
        torch.testing.assert_close(given, own, rtol=0, atol=0)
        torch.testing.assert_close(own, body(example), rtol=0.1, atol=0.1)


@pytest.mark.skipif(shutil.which("g++") is None, reason="AOTInductor compiles with g++")
def test_a_compiled_library_loads_as_its_archive_did(tmp_path):
    """The export ships the .so out of AOTInductor's archive; an older export's .pt2 still loads, the same."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.SiLU()).eval()
    example = torch.rand(1, 3, 32, 32)
    archive = tmp_path / "tiny.pt2"
    torch._inductor.aoti_compile_and_package(torch.export.export(module, (example,)), package_path=str(archive))
    library = int8._shared_library(archive, tmp_path / "tiny.so")
    with torch.inference_mode():
        expected = module(example)
        from_library = load_runner(library)([example])[0]
        from_archive = load_runner(archive)([example])[0]
    torch.testing.assert_close(from_library, expected)
    torch.testing.assert_close(from_archive, from_library, rtol=0, atol=0)


@needs_int8
def test_a_tampered_int8_package_is_refused_at_load(yolov5_dir, tmp_path):
    copy = tmp_path / "export"
    shutil.copytree(yolov5_dir, copy)
    package = copy / ModelCard.read(copy).int8["packages"][0]["file"]
    data = bytearray(package.read_bytes())
    data[len(data) // 2] ^= 0xFF
    package.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="does not match its sidecar"):
        Detector.load(copy)


FAULTS_PER_FORWARD = """
import resource, sys, torch
from model.detector import Detector
from model.memory import keep_activations_on_heap
assert keep_activations_on_heap()
detector = Detector.load(sys.argv[1])
detector.warm_up()
image = torch.full((3, 480, 640), 0.5)
detector.raw(image)
faults = []
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    detector.raw(image)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(min(faults), faults)
"""


@needs_int8
def test_forward_passes_keep_their_activation_memory(yolov5_dir):
    """As a serving process sets the heap up (serving.pipeline), a forward faults in next to no pages.

    Without it glibc maps each large activation afresh and unmaps it on free: 1,000-3,600 page
    faults per int8 forward, about 9 ms of it. Measured in a fresh process, as a serving process
    is: the test process's heap, fragmented by every test before, is no serving process's.
    """
    result = subprocess.run([sys.executable, "-c", FAULTS_PER_FORWARD, str(yolov5_dir)],
                            capture_output=True, text=True, timeout=300, check=True)
    fewest, faults = result.stdout.split(maxsplit=1)
    assert int(fewest) < 200, faults


def test_the_centernet_stays_fp32_because_bf16_moved_its_answers(centernet_dir):
    """Its heatmap peaks are fragile in bf16: the export check caught it, so it serves fp32."""
    card = ModelCard.read(centernet_dir)
    assert card.precision == FP32 and card.precision_check["outcome"].startswith("fp32: bf16 changed")


@pytest.fixture(scope="module")
def maskrcnn_random(tmp_path_factory, shared_dir):
    """A random-init Mask R-CNN export, checked on two shared photos (its real weights cannot be had here)."""
    torch.manual_seed(7)
    out = tmp_path_factory.mktemp("maskrcnn-bf16")
    card = builder.export_maskrcnn(out, random_init=True, min_size=320, max_size=480,
                                   check_photos=photos_in(shared_dir / "eval" / "images")[:2])
    return out, card


def test_the_maskrcnn_export_records_its_bf16_check(maskrcnn_random):
    _, card = maskrcnn_random
    check = card.precision_check
    assert card.bf16_mode == maskrcnn.BF16_MODE == "autocast"
    assert len(check["photos"]) == 2 and check["threshold"] == card.score_threshold
    assert card.precision == (BF16 if check["outcome"].startswith("bf16") else FP32)


def test_a_disagreeing_bf16_run_keeps_the_export_in_fp32(maskrcnn_random, shared_dir):
    """Forced: every random detection counts (threshold 0) and no difference is tolerated."""
    out, card = maskrcnn_random
    module = torch.jit.load(str(out / "model.pt"))
    photos = photos_in(shared_dir / "eval" / "images")[:2]
    verdict = check_bf16(module, card.bf16_mode, card.precision_module, 0.0, card.max_side, photos,
                         box_px=0.0, score_tol=0.0)
    assert verdict["precision"] == FP32
    assert verdict["precision_check"]["outcome"].startswith("fp32: bf16 changed")


def test_without_check_photos_the_export_stays_fp32(tmp_path):
    verdict = check_bf16(torch.jit.script(torch.nn.Identity()), "convert", "body", 0.5, 640, [])
    assert verdict["precision"] == FP32 and "not verified" in verdict["precision_check"]["outcome"]


@needs_bf16
def test_maskrcnn_runs_in_bf16_with_masks(maskrcnn_random):
    out, _ = maskrcnn_random
    detector = Detector.load(out, precision="bf16")
    assert detector.precision == BF16
    image = torch.rand(3, 240, 320)
    boxes, labels, scores = detector.raw(image)
    assert boxes.dtype == torch.float32 and len(boxes) == len(labels) == len(scores)
    boxes, labels, scores, masks = detector.raw_with_masks(image, 0.0)
    assert masks.shape[1:] == (1, 240, 320)
