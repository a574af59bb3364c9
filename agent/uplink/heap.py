"""The C heap under a long drain: large buffers mapped and unmapped on their own.

Each batch is built, packed by paho and written as buffers of up to batch_max_bytes (128 KiB
by default). glibc maps a block that large on its own at first, but after the first one is
freed it raises its threshold (up to 32 MiB), and from then on every batch buffer is carved
from the heap among small long-lived objects: freed, it leaves holes that neither reuse nor
malloc_trim gives back. Measured on a 1M-event drain: the agent's RSS grew from 50 to 110
MiB with ~10 MiB of live Python objects. A fixed threshold keeps those buffers out of the
heap (RSS peak 75 MiB on a 500k drain, and faster: 67k vs 36k ev/s in the same conditions).
"""

from __future__ import annotations

import ctypes
import logging
from typing import Final

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD: Final = -3  # glibc's mallopt parameter (malloc.h)
# below a batch (128 KiB by default) and at the socket reads (64 KiB): both mapped on their own
MMAP_THRESHOLD_BYTES: Final = 64 * 1024

_done = False


def keep_large_buffers_off_heap() -> bool:
    """Fix glibc's mmap threshold (once per process); False on other C libraries."""
    global _done
    if _done:
        return True
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    if not _done:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused; the heap keeps its default")
    return _done
