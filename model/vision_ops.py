"""torchvision's C++ operators (nms, roi_align, ...) without torchvision's Python package.

The exported TorchScript graphs call ``torchvision::nms`` and Mask R-CNN's
``torchvision::roi_align``; those are registered by the extension library
alone. Importing ``torchvision`` itself also builds its models, datasets and
transforms modules: 87 MB of private memory in every serving process (measured
on torch 2.14.1's CUDA build), for nothing the service calls.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

import torch

_loaded = False


def _extension_path() -> Path:
    """Where the installed torchvision keeps its operator library (``_C_stable`` since 0.29)."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("torchvision is not installed: the exported models call its nms operator")
    folder = spec.submodule_search_locations[0]
    finder = importlib.machinery.FileFinder(
        folder, (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES)
    )
    for name in ("_C_stable", "_C"):
        found = finder.find_spec(name)
        if found is not None and found.origin:
            return Path(found.origin)
    raise ImportError(f"no torchvision operator library in {folder}")


def load_vision_ops() -> None:
    """Register torchvision's operators with torch once per process (idempotent)."""
    global _loaded
    if not _loaded:
        torch.ops.load_library(str(_extension_path()))
        _loaded = True
