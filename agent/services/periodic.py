"""The agent's periodic jobs, each a supervised component: the daily retention sweep of the
local tables, the KPI roll-ups written out, and freed heap handed back to the OS."""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Awaitable, Callable
from typing import Any

from agent.contracts.events import PRIVACY_RETENTION

HEAP_TRIM_S = 10.0
# Hourly roll-ups reach the database at most this late (staff mode's Today flushes first;
# `o2o-edge report` in another process reads what is written; a crash forgets at most this
# much of the local counts, the events themselves being in the outbox). Each flush is a
# synced commit of a 4 KiB page: every 5 s it was ~1.6 KiB of SD-card writes per event at
# 1 event/s (bench-wear), every 30 s ~0.3.
KPI_FLUSH_S = 30.0
RETENTION_FIRST_S = 60.0  # the first sweep shortly after start
RETENTION_EVERY_S = 86400.0

Sleep = Callable[[float], Awaitable[None]]


def malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None on other C libraries."""
    try:
        return getattr(ctypes.CDLL("libc.so.6"), "malloc_trim", None)
    except OSError:
        return None


async def trim_heap(trim: Callable[[int], int] | None, every_s: float = HEAP_TRIM_S,
                    sleep: Sleep = asyncio.sleep) -> None:
    """A long drain allocates and frees large batch buffers from several threads; without
    this the heap keeps its high-water mark. Nothing to do without glibc."""
    if trim is None:
        return
    while True:
        await sleep(every_s)
        trim(0)


async def flush_kpis(flush: Callable[[], object], every_s: float = KPI_FLUSH_S,
                     sleep: Sleep = asyncio.sleep) -> None:
    while True:
        await sleep(every_s)
        await asyncio.to_thread(flush)


async def sweep_retention(sweep: Callable[[float], dict[str, int]],
                          retention_days: Callable[[], float],
                          capture: Callable[[str, Any], object],
                          sleep: Sleep = asyncio.sleep) -> None:
    """Every local table swept of what is older than the retention limit (in a worker: it
    rewrites tables); what was removed is recorded when anything was. The limit is read at
    each sweep: a live configuration may change it."""
    await sleep(RETENTION_FIRST_S)
    while True:
        removed = await asyncio.to_thread(sweep, retention_days())
        if any(removed.values()):
            capture(PRIVACY_RETENTION, {"removed": removed})
        await sleep(RETENTION_EVERY_S)
