"""Drains the outbox to the broker: batches, a bounded in-flight window, delete on PUBACK.

Runs on the asyncio loop, and so does paho (link.py, pump.py): no network thread. The outbox
writer's thread posts each commit to it (`call_soon_threadsafe`) with the committed rows.
When nothing older waits (the last read found nothing unsent), those rows are batched and
published right there on the loop: an event crosses two threads on its way out, to the writer
and back. Otherwise rows are read in drain order through a cursor, in the reader's thread;
rows in flight are never re-read, and the cursor starts over when something of higher
priority is committed or a batch has to be re-sent.

One event the broker will never take must not stall every event behind it. It is dropped,
counted in status (uplink.dropped.<reason>) and reported upstream in an
o2o.agent.uplink.dropped event, when:
- the broker announced a Maximum Packet Size (MQTT 5 CONNACK) and the event alone does not
  fit: dropped before sending, as `too_large` (batches are sized under that limit, even
  below MIN_BATCH_BYTES);
- a PUBACK refuses it alone as too large or malformed (refusals.py);
- the broker disconnects with 0x95 (packet too large) with it alone the largest message in
  flight (`too_large`), or closes the connection right after it, CLOSES_BEFORE_DROP times
  in a row, sent alone after the first (`refused_by_broker`; MQTT 3.1.1 brokers have no
  other way to say no) — see closures.py; the handlers are in answers.py.
Refusals about the connection (ACL, quota) never drop anything: the events wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Final

from agent.config import Config
from agent.envelope import PRIORITY_CRITICAL, make_pending
from agent.outbox import Committed, OutboxWriter
from agent.outbox.reader import Cursor
from agent.uplink.batching import Batch, BatchSizer, publish_overhead, split_batch
from agent.uplink.closures import CloseJudge
from agent.uplink.direct import DirectSend
from agent.uplink.feed import OutboxFeed
from agent.uplink.heap import keep_large_buffers_off_heap
from agent.uplink.inbox import Handler, Inbox
from agent.uplink.link import ConnInfo, LinkCallbacks, MqttLink
from agent.uplink.stats import UplinkStats
from drivers.retry import Backoff

log = logging.getLogger(__name__)

REPORT_INTERVAL_S: Final = 5.0  # drops are told upstream at most this often, in one event
IDLE_WAKE_S: Final = 1.0  # the drain looks again this often without news


@dataclass(frozen=True)
class Downstream:
    """Who takes the downstream documents (the store link): the topic filters to subscribe
    and the handler of each message, (topic, payload, response topic, correlation data) ->
    awaitable, run on the loop."""

    topics: tuple[str, ...]
    handler: Handler


class Uplink(DirectSend):
    def __init__(self, cfg: Config, writer: OutboxWriter, bootid: str,
                 downstream: Downstream | None = None) -> None:
        """`downstream`: None when nothing is taken from upstream (no keys pinned)."""
        self.cfg = cfg  # replaced only by reconfigure()
        self.writer = writer
        self.stats = UplinkStats()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.feed: OutboxFeed | None = None
        self.link: MqttLink | None = None
        self._downstream = downstream
        self.inbox: Inbox | None = None  # made at the first run, kept across restarts
        self.extra_topics: set[str] = set()
        self.bootid = bootid
        m = cfg.mqtt
        self.sizer = BatchSizer(m.batch_max_events, m.batch_max_bytes)
        self._window = m.inflight_window
        # after a refusal about the connection, one message probes until one is taken
        self._probing = False
        self._closes = CloseJudge()
        self.last_drop = ""  # what was last dropped and why, for status
        self._inflight: dict[int, Batch] = {}
        self._sent_at: dict[int, float] = {}
        self._inflight_rows: set[int] = set()
        self._cursor: Cursor | None = None
        self._restart_cursor = False
        self._wake = asyncio.Event()
        self._connected = False
        self._connected_since: float | None = None
        self._connected_mono = 0.0
        self._resend: list[Batch] = []
        # acked rows stay hidden from re-reads until the writer has surely deleted them
        self._acked_recent: list[tuple[int, tuple[int, ...]]] = []
        self._acked_rows: set[int] = set()
        self._read_high = {}
        # a refusal about the connection pauses the drain; each one in a row pauses longer
        self._refusal_backoff = Backoff(m.backoff_min_s, m.backoff_max_s)
        self._retry_at = 0.0
        self.last_refusal = ""
        self._reported_at = 0.0

    def reconfigure(self, cfg: Config) -> None:
        """A configuration applied while running, its [mqtt] section unchanged (a new one
        restarts the agent): status and the retained birth message say so at once."""
        self.cfg = cfg
        if self.link is not None:
            self.link.announce(cfg)

    # --- news from other threads ---------------------------------------------------------

    def _post(self, fn: Any, *args: Any) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn, *args)

    def notify_committed(self, committed: list[Committed]) -> None:
        """Called from the writer thread after each commit."""
        self._post(self._on_committed, committed)

    def _on_committed(self, committed: list[Committed]) -> None:
        if self._take_committed(committed):
            return  # on their way: nothing to read back
        self._caught_up = False  # these rows are the reader's now
        self._commits_left += 1
        top_priority = max(c.priority for c in committed)
        if self._cursor is not None and top_priority > self._cursor[0]:
            self._restart_cursor = True
        self._wake.set()

    def _on_connected(self, info: ConnInfo) -> None:
        self._connected = True
        self._connected_since = time.time()  # events created before it are historical
        self._connected_mono = time.monotonic()  # for durations: clock steps must not count
        limit = None
        if info.max_packet and self.link is not None:
            limit = info.max_packet - publish_overhead(self.link.events_topic, self.link.v5)
        self.sizer.set_broker_limit(limit)
        # per connection: a window halved on "receive maximum exceeded" grows back here
        self._window = self.cfg.mqtt.inflight_window
        if info.receive_max:
            self._window = max(1, min(self._window, info.receive_max))
        self._wake.set()

    def _on_reset(self) -> None:
        """The link replaced its paho client: whatever was published before, including
        anything published since the rebuild was asked for, will never be acknowledged."""
        self._caught_up = False
        self._inflight.clear()
        self._sent_at.clear()
        self._inflight_rows.clear()
        self._resend.clear()
        self._restart_cursor = True

    def _on_oversized(self, topic: str, size: int) -> None:
        self.stats.oversized_downstream += 1

    # --- the drain task --------------------------------------------------------------------

    async def run(self) -> None:
        """One life of the drain, with a link and a reader thread of its own; both are
        stopped on the way out, so a restart by the supervisor leaks no thread and no
        second client with the same id."""
        keep_large_buffers_off_heap()  # batch buffers must not fragment the heap (heap.py)
        self._caught_up = self._reading = False
        self._read_high = {}
        self._commits_left = 0
        generation = self._generation = self.writer.generation
        self.loop = asyncio.get_running_loop()
        self._on_reset()
        self._connected = False
        self._connected_since = None
        self._cursor = None
        m = self.cfg.mqtt
        feed = self.feed = OutboxFeed(self.writer.path, m.backoff_min_s, m.backoff_max_s)
        link = self.link = MqttLink(
            self.cfg,
            self.bootid,
            LinkCallbacks(
                connected=lambda info: self._post(self._on_connected, info),
                disconnected=lambda why: self._post(self._on_disconnected, why),
                puback=lambda mid, rc: self._post(self._on_puback, mid, rc),
                reset=lambda: self._post(self._on_reset),
                oversized=lambda topic, size: self._post(self._on_oversized, topic, size),
            ),
        )
        downstream = self._downstream
        if downstream is not None and self.inbox is None:
            self.inbox = Inbox(downstream.handler, self._resubscribe)
        if self.inbox is not None:
            self.inbox.bind(self.loop)
        link.inbox = self.inbox
        link.downstream_topics = list(downstream.topics) if downstream is not None else []
        link.extra_topics = set(self.extra_topics)
        link_task = asyncio.create_task(link.run(), name="mqtt-link")
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._idle_timeout())
                self._wake.clear()
                if link_task.done():
                    # the connection's task ended on an error of ours: end this life of the
                    # drain with it (re-raised), so the supervisor starts both anew
                    link_task.result()
                if self.writer.generation != generation:
                    # the outbox file was replaced: row numbers in flight mean nothing now
                    generation = self._generation = self.writer.generation
                    self._caught_up = False
                    feed.reopen()
                    self._inflight_rows.clear()
                    self._resend.clear()
                    self._read_high = {}  # the new file numbers its rows from the start
                    self._cursor = None
                self._expire_stuck()
                self._report_drops()
                if self._connected and time.monotonic() >= self._retry_at:
                    await self._fill_window()
        finally:
            feed.close()
            await link.close()
            link_task.cancel()
            await asyncio.gather(link_task, return_exceptions=True)  # raised above, if at all
            if self.inbox is not None:
                await self.inbox.close()

    def _idle_timeout(self) -> float:
        now = time.monotonic()
        read_at = self.feed.retry_at if self.feed is not None else 0.0
        waits = [t - now for t in (self._retry_at, read_at) if t > now]
        return max(0.01, min([IDLE_WAKE_S, *waits]))

    def _room(self) -> int:
        return 1 if self._probing else self._window

    async def _fill_window(self) -> None:
        feed = self.feed
        assert self.link is not None and feed is not None
        wrapped = False  # one look back from the start per call: never a busy loop
        while self._connected and len(self._inflight) < self._room():
            now = time.monotonic()
            if now < self._retry_at:
                return
            if self._resend:
                if not self._send(self._resend.pop(0)):
                    return
                continue
            if not feed.ready():
                return
            if self._restart_cursor:
                self._cursor = None
                self._restart_cursor = False
                self._caught_up = False
            free = self._room() - len(self._inflight)
            # a few batches at a time: reading far ahead only costs memory
            limit = min(free, 4) * self.sizer.events
            self._forget_deleted()
            skip = self._inflight_rows | self._acked_rows
            commits_before = self._commits_left
            self._reading = True  # no row goes out directly while the reader may see it
            try:
                got = await feed.read(self._cursor, limit, frozenset(skip),
                                      max_events=self.sizer.events, max_bytes=self.sizer.bytes,
                                      generation=self.writer.generation,
                                      historical_before=self._connected_since)
            finally:
                self._reading = False
            if got is None:
                self._cursor = None  # read from the start once the file can be read
                return
            cursor, batches = got
            if cursor is None:
                # nothing unsent after the cursor; and before it, unless a commit came
                # meanwhile (its rows may be after the read) or the cursor must start over
                self._caught_up = (commits_before == self._commits_left
                                   and not self._restart_cursor)
                if self._cursor is not None and not self._inflight and not wrapped:
                    self._cursor = None  # wrap around to catch anything skipped
                    wrapped = True
                    continue
                return
            self._cursor = cursor
            for batch in batches:
                self._note_read(batch.rowids)
                self._inflight_rows.update(batch.rowids)
                if not self._send(batch):
                    return

    def _report_drops(self) -> None:
        """Events the broker refused for good, told upstream in one event per interval (the
        report is small: it could only be refused as malformed, and then at this pace)."""
        now = time.monotonic()
        if not self.stats.unreported or now - self._reported_at < REPORT_INTERVAL_S:
            return
        self._reported_at = now
        dropped = self.stats.take_unreported()
        data = {"dropped": dropped, "total_dropped": dict(self.stats.dropped)}
        log.warning("uplink dropped events the broker refused for good: %s", dropped)
        try:
            self.writer.submit([make_pending("o2o.agent.uplink.dropped", data, time.time(),
                                             PRIORITY_CRITICAL)])
        except Exception:  # the count in status stays; the report is best effort
            log.warning("could not record the uplink's drop report", exc_info=True)

    def _expire_stuck(self) -> None:
        """A PUBACK missing for `ack_timeout_s` on a live connection: MQTT allows re-sending
        only on a new connection, so reconnect; paho then re-sends what is unacknowledged."""
        if not self._connected or not self._sent_at or self._connected_since is None:
            return
        now = time.monotonic()
        limit = self.cfg.mqtt.ack_timeout_s
        if time.monotonic() - self._connected_mono < limit:
            return  # the re-sends of this connection still have time
        stuck = [mid for mid, t in self._sent_at.items() if now - t > limit]
        if not stuck or self.link is None:
            return
        for mid in stuck:
            self._sent_at[mid] = now
        self.stats.expired_batches += len(stuck)
        log.warning("%d messages unacknowledged for %ss: reconnecting to have them re-sent",
                    len(stuck), limit)
        self.link.force_reconnect()

    def _forget_deleted(self) -> None:
        done_before = self.writer.transactions - 1
        keep = 0
        for txn, rowids in self._acked_recent:
            if txn >= done_before:
                break
            self._acked_rows.difference_update(rowids)
            keep += 1
        if keep:
            del self._acked_recent[:keep]

    def _send(self, batch: Batch) -> bool:
        assert self.link is not None
        if not self.sizer.fits_broker(len(batch.payload)):
            # over the limit the broker announced: it would close the connection on it
            if len(batch.rowids) > 1:
                self._resend.extend(split_batch(batch))
            else:
                self._drop(batch, "too_large", "larger than the broker's maximum packet size "
                           f"({self.sizer.broker_limit} bytes of payload)")
            return True
        mid = self.link.publish(batch.payload)
        if mid is None:  # paho refused it now: read again after a pause, not in a loop
            self._inflight_rows.difference_update(batch.rowids)
            self._restart_cursor = True
            self._retry_at = time.monotonic() + max(self.cfg.mqtt.backoff_min_s,
                                                    self._refusal_backoff.next_delay())
            return False
        self._inflight[mid] = batch
        self._sent_at[mid] = time.monotonic()
        self.stats.published_batches += 1
        self.stats.published_events += len(batch.rowids)
        return True

    async def stop(self) -> None:
        if self.link is not None:
            await self.link.close()

    def publish_telemetry(self, payload: bytes) -> None:
        if self.link is not None:
            self.link.publish_telemetry(payload)

    def publish_reply(self, topic: str, correlation: bytes, payload: bytes) -> None:
        if self.link is not None:
            self.link.publish_reply(topic, correlation, payload)

    def flush(self) -> None:
        """Drain now (a command from upstream), from any thread."""
        self._post(self._wake.set)

    def _resubscribe(self, topics: set[str]) -> None:
        if self.link is not None:
            self.link.resubscribe(topics)

    def want_topics(self, topics: set[str]) -> None:
        """See MqttLink.want_topics; kept here too for a link made later."""
        self.extra_topics = set(topics)
        if self.link is not None:
            self.link.want_topics(self.extra_topics)

    def status(self) -> dict[str, Any]:
        link = self.link
        return {
            "url": self.cfg.mqtt.url.split("@")[-1],
            "protocol": self.cfg.mqtt.protocol,
            "state": link.state if link else "stopped",
            "connected_since": self._connected_since,
            "connects": link.connects if link else 0,
            # a damaged outbox is the more urgent news: nothing can be sent until it is fixed
            "last_error": (self.feed.error if self.feed else "")
            or (link.last_error if link else ""),
            "last_refusal": self.last_refusal,
            "last_drop": self.last_drop,
            "inflight_batches": len(self._inflight),
            "inflight_window": self._window,
            "batch_max_events": self.sizer.events,
            "batch_max_bytes": self.sizer.bytes,
            **self.stats.snapshot(),
            "read_errors": self.feed.errors if self.feed else 0,
            **({"downstream": self.inbox.status()} if self.inbox is not None else {}),
        }
