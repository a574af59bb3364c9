"""The drain's loop against a scripted link and outbox feed: what it sends, and that it stops."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.config import Config
from agent.outbox import Committed
from agent.outbox.reader import Cursor
from agent.outbox.schema import KEY_SHIFT
from agent.uplink.batching import Batch, build_batches
from agent.uplink.drain import Uplink
from agent.uplink.link import MqttLink
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


class OutboxFeedFake:
    """The outbox's rows in drain order (one priority), read after a cursor, skipping rows in
    flight; `during_read` runs while a read is under way (a commit landing then)."""

    retry_at = 0.0
    error = ""
    errors = 0

    def __init__(self) -> None:
        self.rows: list[Any] = []
        self.reads = 0
        self.during_read: Any = None

    def ready(self) -> bool:
        return True

    async def read(self, cursor: Cursor | None, limit: int, skip: frozenset[int],
                   **kw: Any) -> tuple[Cursor | None, list[Batch]] | None:
        self.reads += 1
        if self.during_read is not None:
            self.during_read, during = None, self.during_read
            during()
        after = cursor[1] if cursor is not None else 0
        found = [r for r in self.rows if r.n > after][:limit]
        if not found:
            return None, []
        left = [r for r in found if r.n not in skip]
        return (5, found[-1].n), build_batches(left, max_events=kw["max_events"],
                                               max_bytes=kw["max_bytes"])


def committed(rs: list[Any]) -> list[Committed]:
    return [Committed(r.n, f"id{r.n}", r.n, r.priority, r.created, r.body, "o2o.test.ev")
            for r in rs]


def drain_with(feed: OutboxFeedFake) -> tuple[Uplink, FakeLink]:
    up = Uplink(Config(), FakeWriter(), "B")  # type: ignore[arg-type]
    link = FakeLink()
    up.link, up.feed = link, feed  # type: ignore[assignment]
    up.loop = asyncio.get_running_loop()
    up._connected = True
    return up, link


def sent_rows(link: FakeLink) -> list[int]:
    return [int(ev["seq"]) for p in link.sent for ev in json.loads(p)]


def test_rows_committed_when_nothing_waits_are_sent_without_reading_them_back() -> None:
    async def main() -> tuple[FakeLink, OutboxFeedFake, int]:
        feed = OutboxFeedFake()
        feed.rows = rows(3)
        up, link = drain_with(feed)
        await up._fill_window()  # the backlog: sent, and then nothing more to read
        reads = feed.reads
        fresh = rows(5)[3:]
        feed.rows += fresh
        up._on_committed(committed(fresh))
        return link, feed, reads

    link, feed, reads = asyncio.run(main())
    assert sent_rows(link) == [1, 2, 3, 4, 5]
    assert feed.reads == reads  # the commit's rows went out as they came: no read, no thread


def test_rows_committed_during_a_read_are_left_to_the_reader_and_sent_once() -> None:
    async def main() -> tuple[FakeLink, Uplink]:
        feed = OutboxFeedFake()
        up, link = drain_with(feed)
        await up._fill_window()  # an empty outbox: the direct path opens
        fresh = rows(4)
        feed.rows = fresh[:2]
        up._on_committed(committed(fresh[:2]))  # sent at once

        def commit_meanwhile() -> None:
            feed.rows += fresh[2:]
            up._on_committed(committed(fresh[2:]))

        feed.during_read = commit_meanwhile
        await up._fill_window()  # the drain looks again (woken), and its read sees them
        await up._fill_window()
        return link, up

    link, up = asyncio.run(main())
    assert sorted(sent_rows(link)) == [1, 2, 3, 4]  # each once: none twice, none left
    assert up.stats.direct_batches == 1


def test_rows_a_read_sent_before_their_commit_notice_came_are_not_sent_again() -> None:
    # the writer's commit is in the file before its notice reaches the loop: a read woken by
    # something else (a PUBACK) sends the rows, and the notice must not send them again
    async def main() -> tuple[FakeLink, Uplink]:
        feed = OutboxFeedFake()
        up, link = drain_with(feed)
        await up._fill_window()  # an empty outbox: the direct path opens
        fresh = rows(2)
        feed.rows = fresh
        await up._fill_window()  # the read sees them, sends them, and finds nothing after
        assert up._caught_up
        up._on_committed(committed(fresh))  # the notice, late
        await up._fill_window()
        return link, up

    link, up = asyncio.run(main())
    assert sorted(sent_rows(link)) == [1, 2]  # before the fix: [1, 1, 2, 2]
    assert up.stats.direct_batches == 0


def test_a_commit_of_a_lower_priority_than_rows_read_still_goes_out_directly() -> None:
    # row numbers carry the priority: a priority-5 row is numbered below the priority-9 rows
    # read before it, and is no less new for that
    async def main() -> tuple[FakeLink, Uplink]:
        feed = OutboxFeedFake()
        up, link = drain_with(feed)
        high = [replace(r, n=(9 << KEY_SHIFT) | r.n, priority=9) for r in rows(2)]
        feed.rows = high
        await up._fill_window()  # read and sent; then nothing more to read
        assert up._caught_up
        low = [replace(r, n=(5 << KEY_SHIFT) | 3, priority=5) for r in rows(1)]
        up._on_committed(committed(low))
        return link, up

    link, up = asyncio.run(main())
    assert len(link.sent) == 2 and up.stats.direct_batches == 1


def test_a_failed_connection_task_ends_the_drain_for_the_supervisor_to_restart(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without this the drain would wait for ever on a link that no longer runs."""
    async def broken(self: MqttLink) -> None:
        raise RuntimeError("a bug in the link")

    monkeypatch.setattr(MqttLink, "run", broken)

    async def main() -> None:
        up = Uplink(Config(), FakeWriter(), "B")  # type: ignore[arg-type]
        await asyncio.wait_for(up.run(), 10)

    with pytest.raises(RuntimeError, match="a bug in the link"):
        asyncio.run(main())
