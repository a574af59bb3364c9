"""The outbox writer: one thread, group commit, the only place `seq` is assigned.

The full-disk path is in agent/outbox/room.py, the damage path in agent/outbox/damage.py.

Producers call `submit()` from any thread and get a Future that resolves once their events are
durable (synchronous=FULL). Whatever is queued when a transaction starts goes into it, and an
event never waits longer than `group_commit_ms` for its transaction to start, so a power cut
loses at most that window and never a committed event. PUBACKed rows are deleted in the same
transactions (`ack()`; held a moment for the next events', see agent/outbox/acks.py), so the
writer is the only writer of this process.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from agent.envelope import PendingEvent, render, source_json
from agent.errors import AgentError, Reason
from agent.outbox.acks import HeldAcks
from agent.outbox.damage import Damaged
from agent.outbox.reserve import DiskReserve
from agent.outbox.room import DiskFull, RoomPath
from agent.outbox.store import DropTally, InsertRow, OutboxStore, inode_of

log = logging.getLogger(__name__)

MAX_TXN_EVENTS = 20_000
MAINTENANCE_S = 30.0
RESERVE_RETRY_S = 5.0  # after the reserve was released: how often to try taking it again
REPORT_INTERVAL_S = 5.0


class Committed(NamedTuple):
    n: int
    id: str
    seq: int
    priority: int
    created: float
    body: str
    type: str = ""


@dataclass(slots=True)
class _Submit:
    events: Sequence[PendingEvent]
    future: Future[list[Committed]]


@dataclass(slots=True)
class _Ack:
    generation: int
    rowids: Sequence[int]
    hold: bool = False


@dataclass(slots=True)
class _Erase:
    needles: list[str]
    fut: Future[int]


_STOP = object()


class OutboxWriter(RoomPath):
    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        ttl_s: float,
        source: str,
        bootid: str,
        group_commit_ms: int = 50,
        on_commit: Callable[[list[Committed]], None] | None = None,
        clock: Callable[[], float] = time.time,
        reserve_bytes: int = 0,
    ) -> None:
        self.path = path
        # released when the disk is full, before any event is dropped or refused
        self.reserve = DiskReserve(path.with_name(path.name + ".reserve"), reserve_bytes)
        self._reserve_seen = 0  # releases already told upstream
        self._reserve_out = False  # released and not taken again yet
        self._next_reserve_try = 0.0
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.source = source
        self._source_json = source_json(source)
        self.bootid = bootid
        self.window_s = group_commit_ms / 1000.0
        self.on_commit = on_commit
        self.clock = clock
        self.generation = 0
        self.seq = 0
        self.committed_total = 0
        self.transactions = 0
        self.last_error = ""
        self.quarantined: list[str] = []
        self.drops = DropTally()
        self._unreported = DropTally()
        self._notices: list[PendingEvent] = []
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._erasures: list[_Erase] = []
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self._closed = False
        self._exited = False  # the thread has left its loop: submit() fails fast
        self.death = ""  # why the thread stopped when it was not asked to
        self._store: OutboxStore | None = None
        self._held = HeldAcks()  # PUBACKed rows of this generation, not yet deleted

    # --- API for any thread ------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="outbox-writer", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._open_error is not None:
            raise self._open_error

    def submit(self, events: Sequence[PendingEvent]) -> Future[list[Committed]]:
        fut: Future[list[Committed]] = Future()
        if self._closed:
            fut.set_exception(AgentError(Reason.OUTBOX_CLOSED, "the outbox is shutting down"))
            return fut
        if self._exited:  # never queue for a thread that is gone: the caller would wait for ever
            fut.set_exception(self._gone())
            return fut
        self._q.put(_Submit(events, fut))
        if self._exited:  # it went while we queued: its last sweep may have missed this
            self._fail_queued()
        return fut

    def _gone(self) -> AgentError:
        return AgentError(Reason.OUTBOX_CLOSED,
                          f"the outbox writer has stopped ({self.death or 'stopped'}); nothing "
                          "can be stored: restart the agent (systemctl restart o2o-edge)")

    def _fail_queued(self) -> None:
        """Answer whatever is still queued once the thread is gone (each item is taken by
        exactly one caller of get_nowait, so two sweeps never answer the same future)."""
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                return
            fut = item.future if isinstance(item, _Submit) else \
                item.fut if isinstance(item, _Erase) else None
            if fut is not None and not fut.done():
                fut.set_exception(self._gone())

    def erase(self, needles: list[str]) -> Future[int]:
        """Delete the waiting events that mention any of `needles` (a data subject's
        erasure); done in the writer thread, between commits."""
        fut: Future[int] = Future()
        self._q.put(_Erase(needles, fut))
        return fut

    def ack(self, generation: int, rowids: Sequence[int], *, hold: bool = False) -> None:
        """Delete rows the uplink let go: at once, without an fsync of their own (store.py
        says why); with `hold`, in the next events' transaction (agent/outbox/acks.py)."""
        if rowids:
            self._q.put(_Ack(generation, rowids, hold))

    def stop(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then close."""
        self._closed = True
        self._q.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        # once out of its loop it is stopped, though it may still answer what was queued
        return self._thread is not None and self._thread.is_alive() and not self._exited

    @property
    def counts(self) -> tuple[int, int] | None:
        """Bytes and events buffered, as the writer counts them (the file's are saved every
        so often: agent/outbox/counts.py); None while the file is not open."""
        store = self._store
        return store.counts.totals if store is not None and store.is_open else None

    @property
    def queue_depth(self) -> int:
        return self._q.qsize()

    # --- writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._open()
        except BaseException as exc:  # reported to start()
            self._open_error = exc
            self._exited = True
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop()
        except BaseException as exc:  # not even the loop's guard held: say so, never hang
            self.death = f"{type(exc).__name__}: {exc}"
            self.last_error = f"the outbox writer thread stopped: {self.death}"
            log.critical("%s", self.last_error, exc_info=True)
        finally:
            self._exited = True
            self._fail_queued()

    def _loop(self) -> None:
        next_maintenance = time.monotonic() + MAINTENANCE_S
        last_report = 0.0
        stopping = False
        while not stopping:
            timeout = max(0.05, next_maintenance - time.monotonic())
            held_due = self._held.wait_s(time.monotonic())
            if held_due is not None:
                timeout = min(timeout, held_due)
            if self._unreported:
                timeout = min(timeout, REPORT_INTERVAL_S)
            if self._reserve_out:
                timeout = min(timeout, RESERVE_RETRY_S)
            try:
                first = self._q.get(timeout=timeout)
            except queue.Empty:
                first = None
            submits: list[_Submit] = []
            acks: list[int] = []
            if first is _STOP:
                stopping = True
            elif first is not None:
                stopping = self._collect(first, submits, acks)
            now = time.monotonic()
            acks += self._held.take(now, stopping or bool(submits or acks or self._notices))
            try:
                self._note_reserve(now, RESERVE_RETRY_S)
                if self._unreported and now - last_report >= REPORT_INTERVAL_S:
                    self._notices.append(self._drop_report())
                    last_report = now
                if submits or acks or self._notices:
                    self._commit(submits, acks)
                while self._erasures:  # after the commit: what was just written is erased too
                    job = self._erasures.pop(0)
                    try:
                        assert self._store is not None
                        job.fut.set_result(self._store.erase(job.needles))
                    except Exception as exc:  # reported to the caller, the writer goes on
                        job.fut.set_exception(exc)
                if now >= next_maintenance:
                    next_maintenance = now + MAINTENANCE_S
                    self._maintenance()
            except Exception as exc:  # a bug met by one round: its callers told, the writer goes on
                self.last_error = f"outbox writer: {type(exc).__name__}: {exc}"
                log.exception("outbox writer round failed; going on")
                for s in submits:
                    if not s.future.done():
                        s.future.set_exception(AgentError(
                            Reason.OUTBOX_FULL,
                            f"these events were not stored ({self.last_error})"))
            except BaseException as exc:  # the thread ends (_run says why): answer this round
                for s in submits:
                    if not s.future.done():
                        s.future.set_exception(AgentError(
                            Reason.OUTBOX_CLOSED, f"the outbox writer has stopped "
                            f"({type(exc).__name__}); these events were not stored: restart "
                            "the agent (systemctl restart o2o-edge)"))
                raise
        if self._unreported:
            self._notices.append(self._drop_report())
            self._commit([], [])
        assert self._store is not None
        self._store.close()

    def _collect(self, first: Any, submits: list[_Submit], acks: list[int]) -> bool:
        """Take what is queued, up to the group-commit window; True when asked to stop."""
        deadline = time.monotonic() + self.window_s
        item = first
        count = 0
        while True:
            if item is _STOP:
                return True
            if isinstance(item, _Submit):
                submits.append(item)
                count += len(item.events)
            elif isinstance(item, _Erase):
                self._erasures.append(item)
            elif isinstance(item, Damaged):
                if item.inode == inode_of(self.path):  # not a file moved aside already
                    self._replace_damaged(f"a reader met: {item.why}")
                    acks.clear()  # row numbers of the old file mean nothing in the new one
                    self._held.clear()
            elif item.generation != self.generation:
                pass  # rows of a file moved aside
            elif item.hold:
                self._held.add(item.rowids, time.monotonic())
            else:
                acks.extend(item.rowids)
            if count >= MAX_TXN_EVENTS or time.monotonic() >= deadline:
                return False
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                return False

    def _render(self, events: Sequence[PendingEvent], seq0: int) -> list[InsertRow]:
        rows: list[InsertRow] = []
        seq = seq0
        source, bootid = self._source_json, self.bootid
        for ev in events:
            seq += 1
            body = render(ev, source, bootid, seq)
            rows.append((ev.id, ev.priority, ev.type, ev.created, len(body), bootid, body))
        return rows

    def _commit(self, submits: list[_Submit], acks: list[int]) -> None:
        assert self._store is not None
        notices, self._notices = self._notices, []
        events: list[PendingEvent] = list(notices)
        for s in submits:
            events.extend(s.events)
        try:
            rows = self._render(events, self.seq)
            tally, numbers = self._transact(rows, acks)
        except AgentError as exc:
            if isinstance(exc, DiskFull):
                if len(submits) + (1 if notices else 0) > 1:
                    self._commit_apart(submits, notices)
                    return
                self._refuse(exc.rows, "disk_full")
            self.last_error = str(exc)
            for s in submits:
                if not s.future.done():
                    s.future.set_exception(exc)
            return
        except Exception as exc:  # what the store cannot take: find whose it is, keep the rest
            self._isolate(submits, acks, notices, exc)
            return
        self.seq += len(rows)
        self.committed_total += len(rows)
        self.transactions += 1
        if tally:
            self.drops.merge(tally)
            self._unreported.merge(tally)
        # each new row with the number the store gave it
        committed = self._committed(rows, numbers)
        pos = len(notices)
        for s in submits:
            k = len(s.events)
            if not s.future.done():
                s.future.set_result(committed[pos : pos + k])
            pos += k
        if self.on_commit is not None and committed:
            try:
                self.on_commit(committed)
            except Exception:  # a listener must not break durability
                log.exception("on_commit listener failed")

    def _isolate(self, submits: list[_Submit], acks: list[int], notices: list[PendingEvent],
                 exc: Exception) -> None:
        """A group failed for an unexpected reason: commit each submission on its own, so
        only the one at fault is refused (with an AgentError), and the writer goes on."""
        log.warning("outbox commit failed (%s: %s); committing each submission on its own",
                    type(exc).__name__, str(exc)[:200])
        if len(submits) == 1 and not notices:
            self.last_error = f"events refused by the outbox: {type(exc).__name__}: {exc}"
            if not submits[0].future.done():
                submits[0].future.set_exception(AgentError(
                    Reason.INVALID_EVENT, f"the outbox could not store these events "
                    f"({type(exc).__name__}: {str(exc)[:200]}); they were not kept"))
            if acks:
                self._commit([], acks)
            return
        if notices and not submits:  # our own notices cannot fail twice: drop them, said
            self.last_error = f"agent notices not stored: {type(exc).__name__}: {exc}"
            log.error("%s", self.last_error)
            if acks:
                self._commit([], acks)
            return
        self._notices = notices + self._notices
        self._commit([], acks)
        for s in submits:
            self._commit([s], [])

    def _commit_apart(self, submits: list[_Submit], notices: list[PendingEvent]) -> None:
        """A full disk refused a whole group: commit its parts one by one, the highest
        priority first, so that a burst of telemetry with no room left below its own
        priority does not take a check-in committed beside it down with it."""
        if notices:
            self._notices = notices + self._notices
            self._commit([], [])
        for s in sorted(submits, key=lambda s: -max((e.priority for e in s.events), default=0)):
            self._commit([s], [])

    def _committed(self, rows: list[InsertRow], numbers: list[int]) -> list[Committed]:
        seq0 = self.seq - len(rows)
        return [
            Committed(n, r[0], seq0 + i + 1, r[1], r[3], r[6], r[2])
            for i, (n, r) in enumerate(zip(numbers, rows, strict=True))
        ]
