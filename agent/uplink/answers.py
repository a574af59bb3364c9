"""The drain's answers to the broker: a PUBACK (taken, refused, too large) and a closed
connection that may be about a message in flight (closures.py). A part of `Uplink`
(drain.py), split out for size; runs on the asyncio loop like the rest of it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from agent.config import Config
from agent.outbox import OutboxWriter
from agent.uplink.batching import Batch, BatchSizer, split_batch
from agent.uplink.closures import Close, CloseJudge
from agent.uplink.link import MqttLink
from agent.uplink.refusals import Action, classify
from agent.uplink.stats import UplinkStats
from drivers.retry import Backoff

log = logging.getLogger("agent.uplink.drain")  # one logger name for the drain's lines


class BrokerAnswers:
    # the drain's state these handlers read and change (set in Uplink.__init__)
    cfg: Config
    writer: OutboxWriter
    stats: UplinkStats
    sizer: BatchSizer
    link: MqttLink | None
    last_refusal: str
    last_drop: str
    _closes: CloseJudge
    _probing: bool
    _window: int
    _inflight: dict[int, Batch]
    _sent_at: dict[int, float]
    _inflight_rows: set[int]
    _resend: list[Batch]
    _restart_cursor: bool
    _wake: asyncio.Event
    _connected: bool
    _connected_since: float | None
    _connected_mono: float
    _acked_recent: list[tuple[int, tuple[int, ...]]]
    _acked_rows: set[int]
    _refusal_backoff: Backoff
    _retry_at: float

    def _on_disconnected(self, why: str) -> None:
        lived = time.monotonic() - self._connected_mono if self._connected_since else None
        self._connected = False
        self._connected_since = None
        biggest = max(self._inflight.items(), key=lambda kv: len(kv[1].payload), default=None)
        verdict = self._closes.judge(why, lived, biggest[1] if biggest else None)
        if verdict is Close.NOTHING or biggest is None or self.link is None:
            return
        mid, batch = biggest
        if verdict is Close.SHRINK:
            # send smaller batches (grown back after successes)
            self.sizer.refused(len(batch.rowids), len(batch.payload))
            self.stats.split_batches += 1
            log.warning("broker keeps closing the connection on our batches; now sending at "
                        "most %d events / %d bytes per message", self.sizer.events,
                        self.sizer.bytes)
        elif verdict is Close.PROBE:
            self._probing = True  # one message at a time: the suspect goes alone
        else:
            self._inflight.pop(mid, None)
            self._sent_at.pop(mid, None)
            self._drop(batch, verdict.value, "the broker closed the connection on it "
                       + ("(0x95 packet too large)" if verdict is Close.DROP_TOO_LARGE else
                          "each time it was sent (over its packet size limit?)"))
        # paho must forget what it would re-send at once on the next connection
        self.link.rebuild()

    def _drop(self, batch: Batch, reason: str, how: str) -> None:
        """One event the broker will never take: delete it, counted, reported, said."""
        self._let_go(batch)
        self.stats.drop(reason, len(batch.rowids))
        self._probing = False
        self.last_drop = (f"dropped one event of {len(batch.payload)} bytes: {how}; counted in "
                          f"status as uplink.dropped.{reason}")
        if self.link is not None:
            self.link.last_error = self.last_drop
        if self.stats.dropped[reason] == len(batch.rowids):  # the rest in the periodic report
            log.error("%s", self.last_drop)

    def _on_puback(self, mid: int, rc: int) -> None:
        batch = self._inflight.pop(mid, None)
        self._sent_at.pop(mid, None)
        if batch is None:
            return  # birth/death message, or a batch from before a restart of the mapping
        verdict = classify(rc, len(batch.rowids))
        if verdict.action is Action.ACKED:
            # the delete rides on the next events' transaction (within ACK_HOLD_S): deleted
            # in one of its own it cost as much disk writing again as the insert (bench-wear);
            # a drop below is deleted at once, its count and the outbox agreeing at once
            self._let_go(batch, hold=True)
            self.stats.acked_events += len(batch.rowids)
            self.stats.last_ack = time.time()
            self._closes.acked()
            self.sizer.succeeded(len(batch.rowids), len(batch.payload))
            self._refusal_backoff.reset()
            self._probing = False
            self._wake.set()
            return
        self.stats.refused(verdict)
        if verdict.action is Action.SPLIT:
            # its rows stay marked in flight: the halves carry them
            self.stats.split_batches += 1
            self.sizer.refused(len(batch.rowids), len(batch.payload))
            self._resend.extend(split_batch(batch))
        elif verdict.action is Action.DROP:
            # one event the broker will never take: dropping it is the only way forward
            self._drop(batch, verdict.name, f"the broker refused it (reason 0x{rc:02x})")
        else:
            self._inflight_rows.difference_update(batch.rowids)
            self._restart_cursor = True  # the rows are read again, after the pause
            self._probing = True
            now = time.monotonic()
            if now < self._retry_at:
                self._wake.set()
                return  # the rest of a window refused at once: one pause, one line
            if verdict.shrink_window:
                self._window = max(1, self._window // 2)
            self._retry_at = now + max(self.cfg.mqtt.backoff_min_s,
                                       self._refusal_backoff.next_delay())
            hint = f"; {verdict.hint}" if verdict.hint else ""
            self.last_refusal = (f"broker refused a batch (reason code 0x{rc:02x}, "
                                 f"{verdict.name}){hint}; kept, retrying later")
            if self.link is not None:
                self.link.last_error = self.last_refusal
            log.warning("%s", self.last_refusal)
        self._wake.set()

    def _let_go(self, batch: Batch, *, hold: bool = False) -> None:
        """Delete the batch's rows (`hold`: with the next events, agent/outbox/acks.py);
        hidden from re-reads until the writer surely has."""
        self._inflight_rows.difference_update(batch.rowids)
        self.writer.ack(batch.generation, batch.rowids, hold=hold)
        self._acked_recent.append((self.writer.transactions, batch.rowids))
        self._acked_rows.update(batch.rowids)
