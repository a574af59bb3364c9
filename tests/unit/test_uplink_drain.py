"""The drain's loop against a scripted link and outbox feed: what it sends, and that it stops."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agent.config import Config
from agent.outbox.reader import Cursor
from agent.uplink.batching import Batch, build_batches
from agent.uplink.drain import Uplink
from tests.unit.test_batching import rows


class FakeWriter:
    generation = 0
    transactions = 0
    path = Path("/nonexistent/outbox.db")

    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, generation: int, rowids: Any) -> None:
        self.acked.extend(rowids)


class FakeLink:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.last_error = ""

    def publish(self, payload: bytes) -> int:
        self.sent.append(payload)
        return len(self.sent)


class OneBatchFeed:
    """Two rows; the broker's 0x95 for their batch arrives while the drain reads on."""

    retry_at = 0.0
    error = ""
    errors = 0

    def __init__(self, uplink: Uplink) -> None:
        self.uplink = uplink
        self.rows = rows(2)
        self.reads = 0

    def ready(self) -> bool:
        return True

    async def read(self, cursor: Cursor | None, limit: int, skip: frozenset[int],
                   **kw: Any) -> tuple[Cursor | None, list[Batch]] | None:
        self.reads += 1
        if self.reads == 2:
            self.uplink._on_puback(1, 0x95)  # the refusal lands during this read
        if cursor is not None:
            return None, []
        left = [r for r in self.rows if r.n not in skip]
        return (5, 2), build_batches(left, max_events=kw["max_events"],
                                     max_bytes=kw["max_bytes"])


def test_halves_of_a_refused_batch_are_sent_without_spinning() -> None:
    async def main() -> tuple[Uplink, FakeLink, OneBatchFeed]:
        up = Uplink(Config(), FakeWriter(), "B")  # type: ignore[arg-type]
        link = FakeLink()
        feed = OneBatchFeed(up)
        up.link, up.feed = link, feed  # type: ignore[assignment]
        up.loop = asyncio.get_running_loop()
        up._connected = True
        # before the fix this never returned: it re-read rows in flight for ever, at 100 %
        # CPU, and never sent the halves
        await asyncio.wait_for(up._fill_window(), 5)
        return up, link, feed

    up, link, feed = asyncio.run(main())
    assert len(link.sent) == 3  # the batch, then its two halves
    assert [len(up._inflight[m].rowids) for m in (2, 3)] == [1, 1]
    assert feed.reads <= 4
    assert up.stats.split_batches == 1 and up.stats.refusals["too_large"] == 1
