"""YOLOv5s's body in int8: post-training quantization, then AOTInductor packages, kept only if the answers hold.

* Quantization: PT2E with torchao's ``X86InductorQuantizer`` (per-channel int8
  weights, per-tensor uint8 activations, observed with histograms), the path
  PyTorch points to now that ``torch.ao.quantization`` is gone. Activations are
  calibrated on photos from PyPI wheels (exporters.sample_photos.CALIBRATION),
  none of them an evaluation photo.
* Compilation: ``torch.export`` then AOTInductor with freezing, which fuses
  quantize / convolution / SiLU / dequantize into oneDNN int8 convolutions
  (VNNI or AMX-INT8). Inductor fuses them for static shapes only, so there is
  one compiled body per letterbox shape in ``SHAPES`` (and batch in ``BATCHES``);
  model.compiled_body runs an image in the smallest that holds it. Each is kept as the shared
  library inside AOTInductor's ``.pt2`` archive (code and frozen weights in one
  file): every serving process maps that one file, where loading the archive
  would extract a private copy per process into a temporary folder.
* One set of weights: every package holds the same 8 MB; the export checks that each answers
  bit for bit on the first one's (``shared_constants``), so a serving process holds them once
  (model.compiled_body.SharedConstants).
* The check: the served path (model.compiled_body.split_forward) against the
  fp32 export on the check photos, the same comparison as bf16's but with
  int8's tolerances. Failing, the packages are deleted and the sidecar says why.

The packages are native code for this CPU's vector features; the sidecar lists
them (``requires_flags``) so a CPU without them never loads the packages.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import shutil
import time
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import torch
from torch import nn
from torch.export import Dim

from exporters.precision_check import compare
from model import precision as numerics
from model.card import sha256_of
from model.compiled_body import CompiledBody, SharedConstants, load_runner, split_forward
from model.cpu import FAST_INT8_FLAGS, cpu_flags
from serving.images import photo_tensor

if TYPE_CHECKING:
    from torchao.quantization.pt2e.quantizer import Quantizer

log = logging.getLogger(__name__)

# Letterboxed sides for a 640 model: square, 5:4, 4:3, 3:2 and 16:9 in both orientations; for a
# photo of 500 px or so, the web's common size (500x375, 500x333), 384x512 in both orientations
# and 512x512, where it would otherwise pad to 384x640 or 640x640 (1.25 to 1.56 times its pixels:
# the peer runs every image at its own size); and the square regions cameras send at their own
# size (Frigate's 320 by default, 416 the other common detector input). An image runs in the
# smallest that holds it: a 256x256 frame in 320x320. A process loads a shape on its first use
# (model.compiled_body.OnFirstUse, 8 MB each).
SHAPES = ((640, 640), (512, 640), (640, 512), (480, 640), (640, 480), (448, 640), (640, 448), (384, 640), (640, 384),
          (512, 512), (384, 512), (512, 384), (416, 416), (320, 320))
# Batches compiled besides one image, per shape: camera frames that queue together share a forward
# (model.batching). At 320x320 a frame costs 6.0 ms alone, 5.3 in two, 5.1 in four; at 640x640 a
# batch saved nothing (AMD EPYC, Zen 4, 2 threads; docs/performance-log.md, 2026-12-04).
BATCHES = {(320, 320): (2, 4)}
# Looser than bf16's (4 px, scores within 0.05), because int8 moves answers further: a zebra at
# 0.70 in fp32 scores 0.61, a 4 x 8 px person far away 0.60 and 0.36, the top edge of a 530 px
# motorcycle moves 26 px. What the service answers is the labels above the threshold (and their
# boxes), so an answer must keep its label, its box edges within 4 px plus 5% of the box's longer
# side (30 px on that motorcycle, 7 px on a 60 px ball), and stay an answer: its partner must
# score at least the threshold less 0.1. An answer within 0.1 of the threshold may fall on the
# other side. The acceptance score on the public labels must not drop (tests/model/test_precision.py).
BOX_PX = 4.0
BOX_REL = 0.05
SCORE_TOL = 0.1
# The sidecar's int8 outcome of an export that left the int8 body for later: `make run` serves the
# bf16 export at once, and exporters.int8_next builds the int8 one as the next version meanwhile.
DEFERRED = "deferred: built in the background as the next version (python -m exporters --int8-next)"
# gcc's -m options (what Inductor compiles with) -> /proc/cpuinfo's names.
_GCC_TO_CPUINFO = {"avx512bf16": "avx512_bf16", "avx512vnni": "avx512_vnni", "avxvnni": "avx_vnni",
                   "amx-tile": "amx_tile", "amx-bf16": "amx_bf16", "amx-int8": "amx_int8"}


def unavailable(flags: frozenset[str]) -> str | None:
    """Why int8 cannot be built on this machine, or None."""
    if numerics.fast_int8(flags) is None:
        return f"this CPU has none of {', '.join(FAST_INT8_FLAGS)}: int8 would not be faster"
    if shutil.which("g++") is None and shutil.which("c++") is None:
        return "no C++ compiler for AOTInductor (install g++)"
    if importlib.util.find_spec("torchao") is None:
        return "torchao is not installed"
    return None


def required_flags() -> list[str]:
    """The /proc/cpuinfo flags the compiled code assumes: Inductor's vector ISA for this CPU."""
    from torch._inductor.cpu_vec_isa import pick_vec_isa

    isa = pick_vec_isa()
    options = [flag[2:] for flag in str(isa.build_arch_flags()).split() if flag.startswith("-m")]
    return sorted({_GCC_TO_CPUINFO.get(option, option.replace("-", "_")) for option in options})


def _outputs_in_float_quantizer() -> Quantizer:
    """torchao's x86 quantizer, except for the convolutions whose results are the body's outputs.

    Those (YOLOv5's three 1x1 detect convolutions) write the boxes and scores themselves, where
    int8's rounding costs the most accuracy and saves the least time (about 2% of the FLOPs);
    they stay float, as is usual for quantized detectors.
    """
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86

    class OutputsInFloat(x86.X86InductorQuantizer):
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            for node in model.graph.nodes:
                if node.target is torch.ops.aten.conv2d.default and any(u.op == "output" for u in node.users):
                    # torchao 0.18's own marker for "leave unquantized" (what a None config sets).
                    x86._annotate_nodes_not_quantize(node)
            return super().annotate(model)

    return OutputsInFloat()


def quantize(body: nn.Module, batches: list[torch.Tensor]) -> torch.fx.GraphModule:
    """fp32 body -> the same graph with int8 quantize/dequantize pairs around each convolution.

    ``batches``: letterboxed calibration inputs, 1 x 3 x H x W in 0..1.
    """
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86

    quantizer = _outputs_in_float_quantizer()
    quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
    # An example of two images: a batch of one would fix the batch dimension at 1.
    example = (torch.zeros(2, 3, *SHAPES[0]),)
    # Any multiple of 32 up to the largest shape, any batch compiled: calibration photos and compiled shapes vary.
    images = Dim("images", min=1, max=max((n for sizes in BATCHES.values() for n in sizes), default=2))
    rows = Dim("rows", min=1, max=max(h for h, _ in SHAPES) // 32)
    cols = Dim("cols", min=1, max=max(w for _, w in SHAPES) // 32)
    # strict: TorchDynamo records which source function each node came from, which is how the
    # quantizer finds the body's functional convolutions.
    graph = torch.export.export(
        body, example, dynamic_shapes=({0: images, 2: 32 * rows, 3: 32 * cols},), strict=True
    ).module()
    with warnings.catch_warnings():
        # SPPF's max pools take -inf padding (TensorFlow's SAME), which int8 cannot hold: they stay float.
        warnings.filterwarnings("ignore", message="The input of maxpool2d is not quantized")
        prepared = prepare_pt2e(graph, quantizer)
    for batch in batches:
        prepared(batch)
    return convert_pt2e(prepared)


def compile_packages(quantized: torch.fx.GraphModule, out_dir: Path) -> list[dict[str, object]]:
    """One compiled body per shape in ``SHAPES`` and batch in ``BATCHES`` in ``out_dir``.

    ``body-int8-<H>x<W>.so`` for one image, ``body-int8-<N>x<H>x<W>.so`` for N. AOTInductor writes a
    ``.pt2`` archive into a staging folder; its one shared library (the kernels, the wrapper and
    the frozen weights) is taken out of it and renamed into place.
    """
    entries = []
    staging = out_dir / ".int8-staging"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        for height, width in SHAPES:
            for batch in (1, *BATCHES.get((height, width), ())):
                started = time.monotonic()
                program = torch.export.export(quantized, (torch.zeros(batch, 3, height, width),))
                name = f"body-int8-{height}x{width}" if batch == 1 else f"body-int8-{batch}x{height}x{width}"
                archive = staging / f"{name}.pt2"
                with _constants_named_apart():
                    torch._inductor.aoti_compile_and_package(program, package_path=str(archive),
                                                             inductor_configs={"freezing": True})
                library = _shared_library(archive, staging / f"{name}.so")
                library.replace(out_dir / library.name)
                entry: dict[str, object] = {"shape": [height, width], "file": library.name,
                                            "sha256": sha256_of(out_dir / library.name)}
                if batch > 1:
                    entry["batch"] = batch
                entries.append(entry)
                log.info("int8 body for %d x %dx%d compiled in %.0f s", batch, height, width, time.monotonic() - started)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return entries


@contextlib.contextmanager
def _constants_named_apart() -> Iterator[None]:
    """Give every constant Inductor adds while lowering a name of its own as its original name too.

    Each int8 convolution adds its input's scale and zero point as constants named ``x_scale`` and
    ``x_zp``; Inductor names them ``x_scale_0``, ``x_scale_1``, ... but records ``x_scale`` for
    all 57 as the name they came from, and AOTInductor hands a package's constants out by that
    name only (``extract_constants_map``). With names apart, a serving process can take every
    constant out of the first package it loads and hand that one set to every other package,
    instead of each package copying its own 8 MB (model.compiled_body.SharedConstants).
    """
    from torch._inductor.graph import GraphLowering

    allocate = GraphLowering.allocate_non_dup_const_name

    def named_apart(self: GraphLowering, name: str | None, data: torch.Tensor) -> str:
        allocated = allocate(self, name, data)
        if name is not None and allocated != name and self.allocated_constant_name.get(allocated) == name:
            self.allocated_constant_name[allocated] = allocated
        return allocated

    GraphLowering.allocate_non_dup_const_name = named_apart  # type: ignore[method-assign]
    try:
        yield
    finally:
        GraphLowering.allocate_non_dup_const_name = allocate  # type: ignore[method-assign]


def shares_constants(out_dir: Path, entries: list[dict[str, object]]) -> bool:
    """Whether every package answers bit for bit on the first package's constants as on its own.

    All packages come from one quantized graph, so they should hold the same weights; this checks
    it the way serving uses it (model.compiled_body.SharedConstants), on a random input per package.
    """
    shared = SharedConstants()
    try:
        shared.load(out_dir / str(entries[0]["file"]))
    except RuntimeError as refused:
        log.info("int8 constants not shared: %s", refused)
        return False
    for entry in entries[1:]:
        library = out_dir / str(entry["file"])
        shape = entry["shape"]
        example = torch.rand(int(entry.get("batch", 1)), 3, int(shape[0]), int(shape[1]))  # type: ignore[index]
        with torch.inference_mode():
            own, given = load_runner(library)([example]), shared.load(library)([example])
        if not all(torch.equal(a, b) for a, b in zip(own, given)):
            log.info("int8 constants not shared: %s answers otherwise on %s's", entry["file"], entries[0]["file"])
            return False
    return True


def _shared_library(archive: Path, target: Path) -> Path:
    """The one ``.so`` of an AOTInductor archive (CPU, weights inside it), written to ``target``."""
    with zipfile.ZipFile(archive) as zipped:
        libraries = [name for name in zipped.namelist() if name.endswith(".so")]
        if len(libraries) != 1:
            raise RuntimeError(f"{archive.name}: expected one shared library, found {libraries}")
        with zipped.open(libraries[0]) as source, target.open("wb") as sink:
            shutil.copyfileobj(source, sink)
    return target


def letterboxed(module: torch.jit.ScriptModule, photos: list[Path], max_side: int) -> list[torch.Tensor]:
    """Each photo as the body sees it in service: 1 x 3 x H x W, letterboxed by the export itself."""
    return [module.letterbox(photo_tensor(p, max_side))[0]
            for p in photos]


def build(
    body: nn.Module, module: torch.jit.ScriptModule, out_dir: Path,
    calibration: list[Path], check_photos: list[Path], threshold: float, max_side: int,
) -> dict[str, object]:
    """The sidecar's ``int8`` field; the packages are left in ``out_dir`` only if the check passed.

    ``body`` is the eager fp32 body of ``module`` (the exported YoloV5Detector), whose head strides
    and letterbox grey the compiled body needs at serve time.
    """
    reason = unavailable(cpu_flags())
    if reason is None and not calibration:
        reason = "no calibration photos"
    if reason is None and not check_photos:
        reason = "no check photos given: python -m exporters --check-images DIR"
    if reason is not None:
        log.info("int8 not built: %s", reason)
        return {"outcome": f"not built: {reason}"}
    started = time.monotonic()
    with torch.no_grad():
        quantized = quantize(body, letterboxed(module, calibration, max_side))
        packages = compile_packages(quantized, out_dir)
        spec: dict[str, object] = {
            "packages": packages, "strides": [int(s) for s in module.head.strides],
            "pad_value": float(module.pad_value), "requires_flags": required_flags(),
            "shared_constants": shares_constants(out_dir, packages),
        }
    compiled = CompiledBody.load(out_dir, spec)
    changed, worst_box, worst_score = compare(
        module, lambda image: split_forward(module, compiled, image), check_photos, threshold, max_side,
        BOX_PX, SCORE_TOL, BOX_REL, any_score=True,
    )
    agree = not changed
    spec.update({
        "outcome": "int8: same answers as fp32" if agree else f"not kept: int8 changed {len(changed)} answer(s)",
        "changed": changed,
        "calibration": [p.name for p in calibration],
        "check": {
            "photos": [p.name for p in check_photos], "threshold": threshold,
            "tolerance": {"box_px": BOX_PX, "box_rel": BOX_REL, "partner_score_at_least": f"threshold - {SCORE_TOL}"},
            "worst_box_px": round(worst_box, 3), "worst_score": round(worst_score, 4),
        },
    })
    log.info("int8 check on %d photos: %s (worst box %.2f px, score %.4f), built in %.0f s",
             len(check_photos), spec["outcome"], worst_box, worst_score, time.monotonic() - started)
    if not agree:
        for entry in spec.pop("packages"):  # type: ignore[attr-defined]
            (out_dir / entry["file"]).unlink()
    return spec
