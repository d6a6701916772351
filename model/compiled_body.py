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

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

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
        """Every package of the sidecar's ``int8`` field, each checked against its sha256 now and mapped on first use."""
        runners = []
        for entry in spec["packages"]:  # type: ignore[attr-defined]
            package = Package(int(entry["shape"][0]), int(entry["shape"][1]), str(entry["file"]), str(entry["sha256"]),
                              int(entry.get("batch", 1)))
            path = Path(directory) / package.file
            actual = sha256_of(path)
            if actual != package.sha256:
                raise RuntimeError(f"{path} sha256 {actual} does not match its sidecar ({package.sha256})")
            runners.append((package, OnFirstUse(path)))
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


class OnFirstUse:
    """A package's runner, loaded when an input first needs it.

    Each loaded package costs a process about 7 MB of its own (AOTInductor copies the weights out
    of the library), with nine packages in three serving processes nearly 200 MB, most of it for
    shapes a process never runs: a gRPC server that only sees photos needs no camera batches. The
    first call pays for it once per process: 7 ms to load and about 17 ms more on its first
    forward, for oneDNN's kernels (320x320, AMD EPYC, Zen 4).
    """

    def __init__(self, path: Path):
        self.path = path
        self._runner: Runner | None = None
        self._loading = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._runner is not None

    def __call__(self, inputs: list[torch.Tensor]) -> Maps:
        if self._runner is None:
            with self._loading:
                if self._runner is None:
                    self._runner = load_runner(self.path)
        return self._runner(inputs)


def load_runner(path: Path) -> Callable[[list[torch.Tensor]], Maps]:
    """The compiled library's runner: a list of input tensors in, the list of output tensors out.

    AOTInductor's C++ runner for one CPU model (the ``1``) maps the library where it lies, so
    every serving process shares its pages (8.5 MB per shape). Loading the ``.pt2`` archive
    instead (``AOTIModelPackageLoader``) extracted a private copy per process into a temporary
    folder, left behind by a killed process; ``torch._inductor.aoti_load_package`` on top of it
    also imported all of Inductor (2,000 Python modules, 160 MB per process).
    """
    if path.suffix == ".pt2":  # an export made before the library was taken out of the archive
        return torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1).run
    return torch._C._aoti.AOTIModelContainerRunnerCpu(str(path), 1).run


def split_forward(
    module: torch.jit.ScriptModule, body: Callable[[torch.Tensor], Maps], image: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The export's forward with ``body`` in place of its own: [3, H, W] in 0..1 -> boxes, labels, scores."""
    batch, scale, left, top = module.letterbox(image)
    return module.finish(body(batch), image.shape[-2], image.shape[-1], scale, left, top)
