"""An int8 convolutional body compiled ahead of time (AOTInductor), one shared library per input shape.

The export (exporters.int8) quantizes YOLOv5s's body and compiles it for a few
letterbox shapes (and, for camera frames, batches of a few images of one shape,
model.batching), because Inductor fuses int8 convolutions only for static
shapes. Each is loaded on its first use (:class:`OnFirstUse`). A letterboxed image (sides multiples of 32, the longer one the model's
input size) runs in the smallest shape that holds it: padded at the bottom and
right with the letterbox's own grey, and the maps cropped back to the image's
cells, so the decode sees exactly the cells it would have seen unpadded. The
packages are native code for the CPU features the export recorded
(``requires_flags``); model.precision loads them only on a CPU that has them.

The TorchScript export stays what the detector is: it letterboxes before the
body and decodes after it (``letterbox`` and ``finish``), in
:func:`split_forward`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from model.card import sha256_of

Maps = list[torch.Tensor]


@dataclass(frozen=True)
class Package:
    """One compiled shape: input ``batch`` x 3 x ``height`` x ``width``."""

    height: int
    width: int
    file: str
    sha256: str
    batch: int = 1


Runner = Callable[[list[torch.Tensor]], Maps]


class CompiledBody:
    def __init__(self, runners: list[tuple[Package, Runner]], pad_value: float, strides: tuple[int, ...]):
        # Per letterbox shape, its runners by batch size; every shape has batch 1. Smallest area
        # first: the first shape that holds an input is the cheapest.
        by_shape: dict[tuple[int, int], dict[int, Runner]] = {}
        for package, runner in runners:
            by_shape.setdefault((package.height, package.width), {})[package.batch] = runner
        self._shapes = sorted(by_shape.items(), key=lambda item: item[0][0] * item[0][1])
        self._pad_value = pad_value
        self._strides = strides

    @classmethod
    def load(cls, directory: Path, spec: dict[str, object]) -> "CompiledBody":
        """Every package of the sidecar's ``int8`` field, each checked against its sha256 now and mapped on first use.

        Where the sidecar says ``shared_constants``, the packages run on one set of weights
        (:class:`SharedConstants`); an older export's packages each copy their own.
        """
        shared = SharedConstants() if spec.get("shared_constants") else None
        runners = []
        for entry in spec["packages"]:  # type: ignore[attr-defined]
            package = Package(int(entry["shape"][0]), int(entry["shape"][1]), str(entry["file"]), str(entry["sha256"]),
                              int(entry.get("batch", 1)))
            runners.append((package, OnFirstUse(_checked(Path(directory) / package.file, package.sha256), shared)))
        strides = tuple(int(s) for s in spec["strides"])  # type: ignore[attr-defined]
        return cls(runners, float(spec["pad_value"]), strides)  # type: ignore[arg-type]

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return [shape for shape, _ in self._shapes]

    def __call__(self, batch: torch.Tensor) -> Maps:
        """N x 3 x H x W float32 letterboxed input -> the body's maps, N x C x H/s x W/s for each stride s.

        N images run in the largest compiled batches that fit, then one by one.
        """
        height, width = batch.shape[-2], batch.shape[-1]
        for (package_h, package_w), runners in self._shapes:
            if package_h >= height and package_w >= width:
                break
        else:
            raise ValueError(f"no compiled shape holds a {height}x{width} input (have {self.shapes})")
        if (package_h, package_w) != (height, width):
            batch = F.pad(batch, [0, package_w - width, 0, package_h - height], value=self._pad_value)
        parts: list[Maps] = []
        start = 0
        while start < len(batch):
            size = max(n for n in runners if n <= len(batch) - start)
            parts.append(runners[size]([batch[start: start + size].contiguous()]))
            start += size
        maps = parts[0] if len(parts) == 1 else [torch.cat(level) for level in zip(*parts)]
        return [m[..., : height // s, : width // s] for m, s in zip(maps, self._strides)]


def _checked(path: Path, sha256: str) -> Path:
    actual = sha256_of(path)
    if actual != sha256:
        raise RuntimeError(f"{path} sha256 {actual} does not match its sidecar ({sha256})")
    return path


def constants_by_name(runner: torch._C._aoti.AOTIModelContainerRunnerCpu) -> dict[str, torch.Tensor] | None:
    """A loaded package's constants by the names its code looks them up by: views of its memory, valid while it lives.

    AOTInductor hands constants out by their original names only, so this is None for a package
    in which two share one (an export before exporters.int8 named them apart), or in which one is
    computed at load time rather than stored.
    """
    original = runner.get_constant_names_to_original_fqns()
    by_original = runner.extract_constants_map(False)
    if len(set(original.values())) != len(original) or len(by_original) != len(original):
        return None
    names = {fqn: name for name, fqn in original.items()}
    return {names[fqn]: tensor for fqn, tensor in by_original.items()}


class SharedConstants:
    """The weights of the first package a process loads, handed to each package it loads after.

    Every package of an export holds the same 8 MB of weights (int8 convolution weights packed
    for oneDNN, scales, biases), and left to itself AOTInductor copies a package's weights out of
    its library into the process's memory when it loads it: 8 MB per shape per process. The
    export checks that each package answers bit for bit on another's weights (the sidecar's
    ``shared_constants``); then a process holds them once.
    """

    def __init__(self) -> None:
        self._constants: dict[str, torch.Tensor] | None = None
        self._source: torch._C._aoti.AOTIModelContainerRunnerCpu | None = None  # owns the constants' memory
        self._lock = threading.Lock()

    def load(self, path: Path) -> Runner:
        with self._lock:
            if self._constants is None:
                runner = torch._C._aoti.AOTIModelContainerRunnerCpu(str(path), 1)
                constants = constants_by_name(runner)
                if constants is None:
                    raise RuntimeError(f"{path.name}: its constants cannot be handed out by name to share them")
                self._constants, self._source = constants, runner
                return runner.run
        return load_runner(path, self._constants)


class OnFirstUse:
    """A package's runner, loaded when an input first needs it.

    A package loaded on its own (an export without ``shared_constants``) costs a process 8 MB,
    most of it for shapes a process never runs: a gRPC server that only sees photos needs no
    camera batches. The first call pays for loading once per process: 7 ms to load and about
    17 ms more on its first forward, for oneDNN's kernels (320x320, AMD EPYC, Zen 4).
    """

    def __init__(self, path: Path, shared: SharedConstants | None = None):
        self.path = path
        self._shared = shared
        self._runner: Runner | None = None
        self._loading = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._runner is not None

    def __call__(self, inputs: list[torch.Tensor]) -> Maps:
        if self._runner is None:
            with self._loading:
                if self._runner is None:
                    self._runner = self._shared.load(self.path) if self._shared else load_runner(self.path)
        return self._runner(inputs)


def load_runner(path: Path, constants: dict[str, torch.Tensor] | None = None) -> Runner:
    """The compiled library's runner: a list of input tensors in, the list of output tensors out.

    AOTInductor's C++ runner for one CPU model (the ``1``) maps the library where it lies, so
    every serving process shares its code. Given ``constants`` (:func:`constants_by_name` of a
    package of the same export), it runs on those tensors and never copies its own. Loading the
    ``.pt2`` archive instead (``AOTIModelPackageLoader``) extracted a private copy per process into
    a temporary folder, left behind by a killed process; ``torch._inductor.aoti_load_package`` on
    top of it also imported all of Inductor (2,000 Python modules, 160 MB per process).
    """
    if path.suffix == ".pt2":  # an export made before the library was taken out of the archive
        return torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1).run
    if constants is None:
        return torch._C._aoti.AOTIModelContainerRunnerCpu(str(path), 1).run
    with _without_folding_warning():
        return torch._C._aoti.AOTIModelContainerRunnerCpu(str(path), 1, constants).run


# What each package prints to stderr when handed its constants: it was compiled without runtime
# constant folding, which it does not need (freezing folded everything at export).
_FOLDING_WARNING = b"Calling constant_folding in model, but compiled with config"


@contextlib.contextmanager
def _without_folding_warning() -> Iterator[None]:
    """Drop that line from the process's stderr (file descriptor 2); pass on anything else written meanwhile."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().splitlines(keepends=True) if _FOLDING_WARNING not in line]
            if kept:
                os.write(2, b"".join(kept))


def split_forward(
    module: torch.jit.ScriptModule, body: Callable[[torch.Tensor], Maps], image: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The export's forward with ``body`` in place of its own: [3, H, W] in 0..1 -> boxes, labels, scores."""
    batch, scale, left, top = module.letterbox(image)
    return module.finish(body(batch), image.shape[-2], image.shape[-1], scale, left, top)
