"""The drain's batch buffers are kept off the C heap (agent/uplink/heap.py).

Checked in fresh processes: in a process that has run other tests the heap may hold free
chunks large enough for a batch, and glibc serves those from the heap whatever the threshold.
Even a fresh interpreter may hold one (how it starts moves its heap: measured, an environment
variable more or less turned 8 of 8 mapped into 7), so the probe also says how many blocks
the heap's free bytes could have served.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

from agent.uplink import heap

# after one 1 MiB block is freed, count how many of eight batch-sized blocks glibc maps alone,
# and how many the heap's free bytes could serve at most
PROBE = """
import ctypes, sys
from agent.uplink import heap
libc = ctypes.CDLL("libc.so.6")
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "fixed":
    assert heap.keep_large_buffers_off_heap() and heap.keep_large_buffers_off_heap()
libc.free(libc.malloc(1024 * 1024))  # raises glibc's dynamic threshold, unless fixed
info = libc.mallinfo2()
before, could = info.hblks, info.fordblks // (128 * 1024)
held = [libc.malloc(128 * 1024) for _ in range(8)]
mapped = libc.mallinfo2().hblks - before
for p in held:
    libc.free(p)
print(mapped, libc.mallinfo2().hblks - before, could)
"""


def _probe(mode: str) -> tuple[int, int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    return int(out[0]), int(out[1]), int(out[2])


def test_batch_sized_buffers_are_mapped_alone_and_handed_back() -> None:
    try:
        ctypes.CDLL("libc.so.6").mallinfo2  # noqa: B018 -- glibc 2.33 or later
    except (OSError, AttributeError):
        pytest.skip("not glibc (>= 2.33): no mallopt/mallinfo2 to check")
    assert heap.keep_large_buffers_off_heap()
    # glibc's own behaviour, which made a long drain's heap grow: carved from the heap
    assert _probe("default")[0] == 0
    mapped, left, could = _probe("fixed")
    assert mapped >= 8 - could and mapped >= 6  # each its own mapping, but what free heap took
    assert could <= 2, f"the fresh process's heap held {could} free batch-sized chunks"
    assert left == 0  # ... unmapped on free, nothing kept
