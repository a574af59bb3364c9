"""The writer's full-disk path: the reserve given up and taken again, room made by dropping
the lowest priorities (never above the new events'), and what is refused when nothing is left
to drop — each drop and refusal counted and reported upstream.

Part of OutboxWriter (agent/outbox/writer.py); kept apart so the group commit loop reads on
its own. Runs on the writer thread.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from functools import cached_property

from agent.envelope import PRIORITY_CRITICAL, PendingEvent, make_pending
from agent.errors import AgentError, Reason
from agent.outbox.damage import DamagePath
from agent.outbox.quietlog import QuietLog
from agent.outbox.store import DropTally, InsertRow, is_corruption, is_disk_full

log = logging.getLogger(__name__)


class DiskFull(AgentError):
    """The disk is full and nothing of the new events' priority or below is left to drop."""

    def __init__(self, rows: list[InsertRow], message: str) -> None:
        super().__init__(Reason.OUTBOX_FULL, message)
        self.rows = rows


class RoomPath(DamagePath):
    """Writing through a full disk or damage (a base of OutboxWriter)."""

    # the writer's state this part reads and updates (set in OutboxWriter.__init__)
    drops: DropTally
    _unreported: DropTally
    _reserve_seen: int
    _reserve_out: bool
    _next_reserve_try: float

    @cached_property
    def _quiet(self) -> QuietLog:  # one per writer: its own disk, its own log lines
        return QuietLog(log)

    def _transact(self, rows: list[InsertRow], acks: list[int]) -> tuple[DropTally, list[int]]:
        assert self._store is not None
        for attempt in range(4):
            try:
                done = self._store.transact(rows, acks)
            except sqlite3.DatabaseError as exc:
                if is_disk_full(exc) and self.reserve.release():
                    continue
                if is_disk_full(exc) and acks:
                    # acknowledged rows first, on their own (the store deletes them a few at
                    # a time): they free room, and beside new events they may not fit
                    with contextlib.suppress(sqlite3.DatabaseError):
                        self._store.transact([], acks)
                    acks = []
                    continue
                if is_disk_full(exc) and attempt < 3:
                    self.last_error = f"disk full while writing the outbox: {exc}"
                    self._quiet.warning("disk-full", "%s; dropping lowest-priority events to "
                                        "make room", exc)
                    try:
                        # never above the new events' priority, and enough bytes for them
                        freed = self._store.make_room(0, "disk_full", incoming=rows)
                    except sqlite3.DatabaseError:
                        freed = DropTally()
                    if freed:
                        self.drops.merge(freed)
                        self._unreported.merge(freed)
                        continue
                if is_disk_full(exc):  # counted as refused by _commit, or split there
                    raise DiskFull(
                        rows,
                        f"the outbox disk is full and nothing is left to drop ({exc}); "
                        "free disk space on the device",
                    ) from exc
                if is_corruption(exc) and attempt < 3:
                    self._replace_damaged(str(exc))
                    acks = []  # row numbers of the old file mean nothing in the new one
                    continue
                raise AgentError(
                    Reason.OUTBOX_FULL, f"could not write the outbox {self.path}: {exc}"
                ) from exc
            else:
                if rows:
                    self._wrote()
                return done
        raise AgentError(Reason.OUTBOX_FULL, f"could not write the outbox {self.path}")

    def _wrote(self) -> None:
        """New events were stored: a write error said before (a full disk, a refusal) is
        over, so status stops saying it. A file moved aside stays said (it names where)."""
        if self.last_error and not any(moved in self.last_error for moved in self.quarantined):
            log.info("the outbox stores events again (after: %s)", self.last_error)
            self.last_error = ""

    def _refuse(self, rows: list[InsertRow], reason: str) -> None:
        assert self._store is not None
        tally = DropTally()
        tally.add(f"refused_{reason}", ((r[4], r[2]) for r in rows))
        self.drops.merge(tally)
        self._unreported.merge(tally)
        self._store.count_refused(len(rows))

    def _note_reserve(self, now: float, retry_s: float) -> None:
        """Tell upstream when the disk reserve was given up (here or by another writer), and
        take it again, trying every `retry_s`, once the disk has room."""
        if self.reserve.releases > self._reserve_seen:
            self._reserve_seen = self.reserve.releases
            self._reserve_out = True
            self._next_reserve_try = now + retry_s
            self.last_error = ("the disk is full: the outbox's reserve was released; free disk "
                               "space on the device")
            self._notices.append(make_pending(
                "o2o.agent.outbox.reserve", {"status": "released", "bytes": self.reserve.size},
                self.clock(), PRIORITY_CRITICAL))
        elif self._reserve_out and now >= self._next_reserve_try:
            self._next_reserve_try = now + retry_s
            if self.reserve.take():
                self._reserve_out = False
                log.warning("the disk has room again: the outbox's reserve is taken again")
                self._notices.append(make_pending(
                    "o2o.agent.outbox.reserve", {"status": "taken", "bytes": self.reserve.size},
                    self.clock(), PRIORITY_CRITICAL))

    def _drop_report(self) -> PendingEvent:
        t, self._unreported = self._unreported, DropTally()
        data = {
            "dropped": dict(t.count),
            "bytes": dict(t.nbytes),
            "by_type": dict(t.by_type),
            "total_dropped": dict(self.drops.count),
        }
        self._quiet.warning("dropped", "outbox dropped events: %s", data["dropped"])
        return make_pending("o2o.agent.outbox.dropped", data, self.clock(), PRIORITY_CRITICAL)

    def _maintenance(self) -> None:
        assert self._store is not None
        try:
            tally = self._store.expire(self.clock())
            if tally:
                self.drops.merge(tally)
                self._unreported.merge(tally)
            self._store.save_counts()
            self._store.vacuum_some()
        except sqlite3.DatabaseError as exc:
            self.last_error = f"outbox maintenance failed: {exc}"
            self._quiet.warning("maintenance", "%s", self.last_error)
