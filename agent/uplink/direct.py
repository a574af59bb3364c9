"""Rows just committed, sent as they come from the outbox writer: the drain's direct path. A
part of `Uplink` (drain.py), split out for size; runs on the asyncio loop like the rest of it.

The writer hands each commit's rows to the loop. When nothing older waits to be sent (the
last read found nothing unsent) and they fit in the window, they are batched and published
right there: an event then crosses two threads on its way to the broker — to the writer for
the commit, and back — and the reader does not read back what the writer just wrote.
Whenever the reader's order or state could be upset, they are left to it.
"""

from __future__ import annotations

import time

from agent.outbox import Committed, row_range
from agent.uplink.answers import BrokerAnswers
from agent.uplink.batching import Batch, build_batches
from agent.uplink.feed import OutboxFeed


class DirectSend(BrokerAnswers):
    feed: OutboxFeed | None
    # set anew by each run() of the drain
    _caught_up = False  # the last read found nothing unsent: the direct path is open
    _reading = False  # a read is under way: it may see the rows just committed
    _commits_left = 0  # commits left to the reader (a read may not have seen them)
    _generation = 0  # the outbox file's generation the drain reads
    # the highest row the reader has handed out in each range of row numbers (a priority's:
    # agent/outbox/schema.py): the file shows a commit's rows before its notice reaches the
    # loop, so a read in between may have sent them already
    _read_high: dict[int, int]  # set by the drain's __init__ and anew by each run()

    def _room(self) -> int:
        raise NotImplementedError  # the drain's window (drain.py)

    def _send(self, batch: Batch) -> bool:
        raise NotImplementedError  # publishes one batch (drain.py)

    def _read_already(self, committed: list[Committed]) -> bool:
        return any(c.n <= self._read_high.get(row_range(c.n), -1) for c in committed)

    def _note_read(self, rowids: tuple[int, ...]) -> None:
        for n in rowids:
            r = row_range(n)
            if n > self._read_high.get(r, -1):
                self._read_high[r] = n

    def _take_committed(self, committed: list[Committed]) -> bool:
        """Publish rows just committed, as they are, when nothing older waits to be sent and
        they fit in the window: the reader need not read back what the writer just wrote.
        False (nothing sent) whenever the reader's order or state could be upset."""
        if not (self._caught_up and self._connected and not self._reading
                and not self._restart_cursor and not self._resend and not self._probing
                and self.link is not None and self.feed is not None and self.feed.ready()
                and self.writer.generation == self._generation
                and time.monotonic() >= self._retry_at
                and not self._read_already(committed)):
            return False
        batches = build_batches(committed, max_events=self.sizer.events,
                                max_bytes=self.sizer.bytes, generation=self._generation,
                                historical_before=self._connected_since)
        if len(self._inflight) + len(batches) > self._room():
            return False
        for batch in batches:
            self._inflight_rows.update(batch.rowids)
            if not self._send(batch):
                return False  # the rest is read again after the pause _send set
        self.stats.direct_batches += len(batches)
        return True

