"""Give freed heap memory back to the operating system after a large decode.

glibc keeps freed blocks in its arenas: after one 49 MP decode a worker stayed
330 MB larger although nothing referenced the pixels any more, and the next
large decode, on another thread's arena, added to it. ``malloc_trim`` returns
that memory (6-10 ms), so the decode budget bounds resident memory, not only
live objects. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# Decodes smaller than this leave too little behind to be worth a trim.
TRIM_AFTER_BYTES = 64 * 1024 * 1024


def _load_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_malloc_trim = _load_trim()


def release_freed_memory(decoded_bytes: int) -> None:
    """After a decode that cost ``decoded_bytes``, return the heap's free memory to the OS if worth it."""
    if _malloc_trim is not None and decoded_bytes >= TRIM_AFTER_BYTES:
        _malloc_trim(0)
