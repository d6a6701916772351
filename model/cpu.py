"""What this CPU is and which numerics its instructions make fast, from /proc/cpuinfo.

Every speed decision (model.precision) and every reported figure (the
benchmark scripts) names the CPU it was made on: the machines that run this
service differ (an Intel Xeon with AMX, an AMD EPYC with AVX512-BF16 and VNNI,
older CPUs with neither).
"""

from __future__ import annotations

import os
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# Without one of these, oneDNN emulates bf16 and it is slower than fp32.
FAST_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# Without one of these, int8 dot products take three instructions instead of one.
FAST_INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")


def _field(name: str, cpuinfo: Path) -> str | None:
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.split(":", 1)[0].strip() == name:
            return line.split(":", 1)[1].strip()
    return None


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo does not exist, i.e. not Linux)."""
    return frozenset((_field("flags", cpuinfo) or "").split())


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    return _field("model name", cpuinfo) or "unknown CPU"


def cpu_kind(flags: frozenset[str]) -> str:
    """The class of CPU that decides the numerics: AMX, AVX512-BF16 (with VNNI), VNNI only, or fp32 only."""
    if "amx_bf16" in flags:
        return "AMX (bf16 and int8 matrix units)"
    if "avx512_bf16" in flags:
        return "AVX512-BF16 and VNNI, no AMX"
    if "avx512_vnni" in flags or "avx_vnni" in flags:
        return "VNNI (int8), no bf16"
    return "fp32 only (no bf16 or VNNI)"


def describe(cpuinfo: Path = CPUINFO) -> str:
    """One line for a log or a report: model, kind, CPUs."""
    return f"{cpu_model(cpuinfo)}: {cpu_kind(cpu_flags(cpuinfo))}, {len(os.sched_getaffinity(0))} CPUs usable"
