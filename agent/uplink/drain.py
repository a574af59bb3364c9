"""Drains the outbox to the broker: batches, a bounded in-flight window, delete on PUBACK.

Runs on the asyncio loop; paho's thread only posts news to it (`call_soon_threadsafe`).
Rows are read in drain order through a cursor; rows in flight are never re-read, and the cursor
starts over when something of higher priority is committed or a batch has to be re-sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from agent.config import Config
from agent.outbox import Committed, OutboxReader, OutboxWriter
from agent.outbox.reader import Cursor
from agent.uplink.batching import Batch, build_batches, split_batch
from agent.uplink.link import LinkCallbacks, MqttLink

log = logging.getLogger(__name__)

RC_PACKET_TOO_LARGE = 0x95
RC_QUOTA_EXCEEDED = 0x97
RC_PAYLOAD_FORMAT = 0x99
_TOO_LARGE = {RC_PACKET_TOO_LARGE, RC_QUOTA_EXCEEDED}
MQTT_FIXED_OVERHEAD = 512
QUICK_DROP_S = 5.0  # topic, properties and header of one PUBLISH


@dataclass
class UplinkStats:
    published_batches: int = 0
    published_events: int = 0
    acked_events: int = 0
    refused_batches: int = 0
    split_batches: int = 0
    rejected_too_large: int = 0
    expired_batches: int = 0
    last_ack: float | None = None
    refusals: dict[int, int] = field(default_factory=dict)


class Uplink:
    def __init__(self, cfg: Config, writer: OutboxWriter, bootid: str) -> None:
        self.cfg = cfg
        self.writer = writer
        self.stats = UplinkStats()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.reader: OutboxReader | None = None
        self.link: MqttLink | None = None
        # downstream documents (the store link): topic filters and who takes the messages
        self.downstream: Callable[[str, bytes, str, bytes], object] | None = None
        self.downstream_topics: list[str] = []
        self.extra_topics: set[str] = set()
        self.bootid = bootid
        self.max_bytes = cfg.mqtt.batch_max_bytes
        self._max_events = cfg.mqtt.batch_max_events
        self._quick_drops = 0
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
        # one reader thread: rows are read there and freed here; a pool of threads would
        # spread them over several malloc arenas and grow RSS on long drains
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-read")
        # acked rows stay hidden from re-reads until the writer has surely deleted them
        self._acked_recent: list[tuple[int, tuple[int, ...]]] = []
        self._acked_rows: set[int] = set()
        self._retry_at = 0.0

    # --- news from other threads ---------------------------------------------------------

    def _post(self, fn: Any, *args: Any) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn, *args)

    def notify_committed(self, committed: list[Committed]) -> None:
        """Called from the writer thread after each commit."""
        top = max(c.priority for c in committed)
        self._post(self._on_committed, top)

    def _on_committed(self, top_priority: int) -> None:
        if self._cursor is not None and top_priority > self._cursor[0]:
            self._restart_cursor = True
        self._wake.set()

    def _on_connected(self, session_present: bool, max_packet: int | None) -> None:
        self._connected = True
        self._connected_since = time.time()  # events created before it are historical
        self._connected_mono = time.monotonic()  # for durations: clock steps must not count
        limit = self.cfg.mqtt.batch_max_bytes
        if max_packet:
            limit = min(limit, max_packet - MQTT_FIXED_OVERHEAD)
        self.max_bytes = min(self.max_bytes, max(1024, limit))
        self._wake.set()

    def _on_disconnected(self, why: str) -> None:
        lived = time.monotonic() - self._connected_mono if self._connected_since else None
        self._connected = False
        self._connected_since = None
        if lived is None or lived > QUICK_DROP_S or not self._inflight:
            return
        if max(len(b.rowids) for b in self._inflight.values()) < 2:
            return
        # Dropped right after sending: brokers (mosquitto's message_size_limit, MQTT 3.1.1)
        # answer a message that is too large by closing the connection. Twice in a row,
        # send smaller batches, and make paho forget the big ones it would re-send.
        self._quick_drops += 1
        if self._quick_drops < 2 or self.link is None:
            return
        self._quick_drops = 0
        self.max_bytes = max(1024, self.max_bytes // 2)
        self._max_events = max(1, self._max_events // 2)
        self.stats.split_batches += 1
        log.warning("broker keeps closing the connection on our batches; now sending at most "
                    "%d events / %d bytes per message", self._max_events, self.max_bytes)
        self.link.rebuild()

    def _on_reset(self) -> None:
        """The link replaced its paho client: whatever was published before, including
        anything published since the rebuild was asked for, will never be acknowledged."""
        self._inflight.clear()
        self._sent_at.clear()
        self._inflight_rows.clear()
        self._resend.clear()
        self._restart_cursor = True

    def _on_puback(self, mid: int, rc: int) -> None:
        batch = self._inflight.pop(mid, None)
        self._sent_at.pop(mid, None)
        if batch is None:
            return  # birth/death message, or a batch from before a restart of the mapping
        self._inflight_rows.difference_update(batch.rowids)
        if rc < 0x80:
            self.writer.ack(batch.generation, batch.rowids)
            self._acked_recent.append((self.writer.transactions, batch.rowids))
            self._acked_rows.update(batch.rowids)
            self.stats.acked_events += len(batch.rowids)
            self._quick_drops = 0
            self.stats.last_ack = time.time()
        elif rc in _TOO_LARGE and len(batch.rowids) > 1:
            self.stats.split_batches += 1
            self._resend.extend(split_batch(batch))
            self._inflight_rows.update(r for b in self._resend for r in b.rowids)
        elif rc in _TOO_LARGE or rc == RC_PAYLOAD_FORMAT:
            # one event the broker will never take: dropping it is the only way forward
            self.stats.rejected_too_large += 1
            log.error("broker refused one event for good (reason 0x%02x); dropping it", rc)
            self.writer.ack(batch.generation, batch.rowids)
        else:
            self.stats.refused_batches += 1
            self.stats.refusals[rc] = self.stats.refusals.get(rc, 0) + 1
            if self.link is not None:
                self.link.last_error = f"broker refused a batch (reason code 0x{rc:02x})"
            self._restart_cursor = True
            self._retry_at = time.monotonic() + 5.0  # e.g. not authorised: do not hammer
        self._wake.set()

    # --- the drain task --------------------------------------------------------------------

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.reader = OutboxReader(self.writer.path)
        generation = self.writer.generation
        self.link = MqttLink(
            self.cfg,
            self.bootid,
            LinkCallbacks(
                connected=lambda sp, mp: self._post(self._on_connected, sp, mp),
                disconnected=lambda why: self._post(self._on_disconnected, why),
                puback=lambda mid, rc: self._post(self._on_puback, mid, rc),
                reset=lambda: self._post(self._on_reset),
            ),
        )
        self.link.downstream = self.downstream
        self.link.downstream_topics = self.downstream_topics
        self.link.extra_topics = set(self.extra_topics)
        self.link.start()
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                self._wake.clear()
                if self.writer.generation != generation:
                    # the outbox file was replaced: row numbers in flight mean nothing now
                    generation = self.writer.generation
                    self.reader.close()
                    self.reader = OutboxReader(self.writer.path)
                    self._inflight_rows.clear()
                    self._cursor = None
                self._expire_stuck()
                if self._connected and time.monotonic() >= self._retry_at:
                    await self._fill_window()
        finally:
            self.reader.close()
            self._io.shutdown(wait=False)

    async def _fill_window(self) -> None:
        assert self.link is not None and self.reader is not None and self.loop is not None
        window = self.cfg.mqtt.inflight_window
        while self._resend and len(self._inflight) < window:
            self._send(self._resend.pop(0))
        while self._connected and len(self._inflight) < window:
            if self._restart_cursor:
                self._cursor = None
                self._restart_cursor = False
            free = window - len(self._inflight)
            # a few batches at a time: reading far ahead only costs memory
            limit = min(free, 4) * self._max_events
            self._forget_deleted()
            skip = self._inflight_rows | self._acked_rows
            cursor, batches = await self.loop.run_in_executor(
                self._io, self._read_batches, self._cursor, limit, frozenset(skip),
                self._max_events, self.max_bytes, self.writer.generation,
                self._connected_since,
            )
            if cursor is None:
                if self._cursor is not None and not self._inflight:
                    self._cursor = None  # wrap around to catch anything skipped
                    continue
                return
            self._cursor = cursor
            if not batches:
                continue
            for batch in batches:
                self._inflight_rows.update(batch.rowids)
                self._send(batch)

    def _read_batches(
        self, cursor: Cursor | None, limit: int, skip: frozenset[int], max_events: int,
        max_bytes: int, generation: int, historical_before: float | None,
    ) -> tuple[Cursor | None, list[Batch]]:
        """Runs in the reader thread: rows are read, packed and freed in the same thread,
        so only the finished batches cross over (keeps the heap from fragmenting)."""
        assert self.reader is not None
        rows = self.reader.fetch(cursor, limit)
        if not rows:
            return None, []
        last = (rows[-1].priority, rows[-1].n)
        rows = [r for r in rows if r.n not in skip]
        return last, build_batches(rows, max_events=max_events, max_bytes=max_bytes,
                                   generation=generation, historical_before=historical_before)

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

    def _send(self, batch: Batch) -> None:
        assert self.link is not None
        mid = self.link.publish(batch.payload)
        if mid is None:
            self._inflight_rows.difference_update(batch.rowids)
            self._restart_cursor = True
            return
        self._inflight[mid] = batch
        self._sent_at[mid] = time.monotonic()
        self.stats.published_batches += 1
        self.stats.published_events += len(batch.rowids)

    async def stop(self) -> None:
        if self.link is not None:
            await asyncio.to_thread(self.link.stop)

    def publish_telemetry(self, payload: bytes) -> None:
        if self.link is not None:
            self.link.publish_telemetry(payload)

    def publish_reply(self, topic: str, correlation: bytes, payload: bytes) -> None:
        if self.link is not None:
            self.link.publish_reply(topic, correlation, payload)

    def flush(self) -> None:
        """Drain now (a command from upstream), from any thread."""
        self._post(self._wake.set)

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
            "last_error": link.last_error if link else "",
            "inflight_batches": len(self._inflight),
            "published_events": self.stats.published_events,
            "acked_events": self.stats.acked_events,
            "split_batches": self.stats.split_batches,
            "refused_batches": self.stats.refused_batches,
            "rejected_too_large": self.stats.rejected_too_large,
            "expired_batches": self.stats.expired_batches,
            "last_ack": self.stats.last_ack,
        }
