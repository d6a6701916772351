"""One reader of ``/proc/<pid>/stat`` (parent, process group, session, start time, name, state) and of
``/proc/<pid>/smaps_rollup`` (a process's memory, summed over its mappings).

The service's own processes need it (the metrics directory's owner, the front's
orphaned nginx workers), and so do the scripts and tests that look after them.
The name is in parentheses and may hold spaces or parentheses itself, hence the
split at the last ``)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    comm: str
    state: str  # "Z": a zombie, exited and not yet reaped by its parent
    ppid: int
    pgrp: int
    session: int
    # Clock ticks after boot: with the pid, tells a process from a later one that reuses its pid.
    start_time: int


def stat(pid: int) -> ProcStat | None:
    """The process's stat, or None when it is gone (or /proc is not there)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    head, tail = text.rsplit(")", 1)
    fields = tail.split()
    return ProcStat(pid=pid, comm=head.split("(", 1)[1], state=fields[0], ppid=int(fields[1]), pgrp=int(fields[2]),
                    session=int(fields[3]), start_time=int(fields[19]))


def processes() -> Iterator[ProcStat]:
    """Every process that still exists while it is read."""
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (found := stat(int(entry.name))) is not None:
            yield found


def children(pid: int) -> list[int]:
    return sorted(p.pid for p in processes() if p.ppid == pid)


def running(pid: int) -> bool:
    """Neither gone nor a zombie waiting for its (perhaps new) parent to reap it."""
    found = stat(pid)
    return found is not None and found.state != "Z"


def smaps_rollup(pid: int) -> dict[str, int]:
    """The process's ``smaps_rollup`` fields in kB (``Pss``, ``Shared_Dirty``, ...)."""
    fields = {}
    for line in (PROC / str(pid) / "smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if rest.strip().endswith("kB"):
            fields[name] = int(rest.split()[0])
    return fields
