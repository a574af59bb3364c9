"""The drain's read side: rows from the outbox, packed into batches in a thread of its own.

Whatever the outbox raises (a damaged file, an I/O error, a file replaced under it) is
reported and retried with backoff; it never ends the uplink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from agent.outbox import OutboxReader
from agent.outbox.reader import Cursor
from agent.uplink.batching import Batch, build_batches
from drivers.retry import Backoff

log = logging.getLogger(__name__)


class OutboxFeed:
    def __init__(self, path: Path, backoff_min_s: float, backoff_max_s: float) -> None:
        self.path = path
        self.reader: OutboxReader | None = None
        self.error = ""  # the current failure, "" while reads work
        self.errors = 0
        self.retry_at = 0.0
        self._min_s = backoff_min_s
        self._backoff = Backoff(backoff_min_s, backoff_max_s)
        # one reader thread: rows are read there and freed here; a pool of threads would
        # spread them over several malloc arenas and grow RSS on long drains
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-read")

    def ready(self) -> bool:
        return time.monotonic() >= self.retry_at

    async def read(
        self, cursor: Cursor | None, limit: int, skip: frozenset[int], *, max_events: int,
        max_bytes: int, generation: int, historical_before: float | None,
    ) -> tuple[Cursor | None, list[Batch]] | None:
        """The next batches after `cursor` (cursor None: nothing more), or None when the
        read failed (reported; `ready()` says when to try again)."""
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                self._io, self._read, cursor, limit, skip, max_events, max_bytes, generation,
                historical_before)
        except Exception as exc:  # whatever the outbox does, the uplink goes on
            self._failed(exc)
            return None
        if self.error:
            log.warning("the outbox can be read again; sending resumes")
            self.error = ""
        self._backoff.reset()
        return result

    def _read(
        self, cursor: Cursor | None, limit: int, skip: frozenset[int], max_events: int,
        max_bytes: int, generation: int, historical_before: float | None,
    ) -> tuple[Cursor | None, list[Batch]]:
        """Runs in the reader thread: rows are read, packed and freed in the same thread,
        so only the finished batches cross over (keeps the heap from fragmenting)."""
        if self.reader is None:
            self.reader = OutboxReader(self.path)
        rows = self.reader.fetch(cursor, limit)
        if not rows:
            return None, []
        last = (rows[-1].priority, rows[-1].n)
        rows = [r for r in rows if r.n not in skip]
        return last, build_batches(rows, max_events=max_events, max_bytes=max_bytes,
                                   generation=generation, historical_before=historical_before)

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self.reopen()
        # full jitter, but never sooner than the minimum: no hot loop on a broken file
        self.retry_at = time.monotonic() + max(self._min_s, self._backoff.next_delay())
        error = f"cannot read the outbox {self.path}: {exc}"
        if error != self.error:  # once per kind of failure, not once per retry
            log.error("%s; retrying with backoff (nothing is sent meanwhile; the events "
                      "stay in the outbox)", error)
        self.error = error

    def reopen(self) -> None:
        """Close the reader; the next read opens the file anew (replaced or repaired)."""
        if self.reader is not None:
            with contextlib.suppress(Exception):  # a damaged file may fail even this
                self.reader.close()
            self.reader = None

    def close(self) -> None:
        # in the reader thread, after a read that may still be running there
        self._io.submit(self.reopen)
        self._io.shutdown(wait=False)
