"""The drain's batch buffers are kept off the C heap (agent/uplink/heap.py)."""

from __future__ import annotations

import ctypes

import pytest

from agent.uplink import heap


def test_threshold_is_fixed_once_and_large_buffers_are_mapped() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2  # noqa: B018 -- glibc 2.33 or later
    except (OSError, AttributeError):
        pytest.skip("not glibc (>= 2.33): no mallopt/mallinfo2 to check")

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    libc.mallinfo2.restype = MallInfo2
    assert heap.keep_large_buffers_off_heap()
    assert heap.keep_large_buffers_off_heap()  # a second drain life: nothing more to do
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    # freeing a mapped block would have raised glibc's dynamic threshold: now it stays
    libc.free(libc.malloc(1024 * 1024))
    before = libc.mallinfo2().hblks
    held = [libc.malloc(128 * 1024) for _ in range(4)]  # a batch's size: mapped each
    assert libc.mallinfo2().hblks > before
    for p in held:
        libc.free(p)
    assert libc.mallinfo2().hblks <= before  # and handed back at once
