"""The outbox's drop policy: the quota, the TTL and room made on a full disk, each drop
counted in the file (`counters`) by reason. Part of OutboxStore (agent/outbox/store.py, whose
docstring states the policy); kept apart so the store's transactions read on their own.
Runs on the writer thread, inside the store's transactions.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from agent.outbox.counts import Counts
from agent.outbox.schema import InsertRow, firsts, key_range

EXPIRE_CHUNK: Final = 512  # rows a TTL sweep looks at per statement
ROW_OVERHEAD: Final = 96  # index entries and row header per event, measured on the schema


@dataclass
class DropTally:
    """Events dropped in one transaction, by reason and by type."""

    count: Counter[str] = field(default_factory=Counter)
    nbytes: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str, rows: Iterable[tuple[int, str]]) -> None:
        for size, etype in rows:
            self.count[reason] += 1
            self.nbytes[reason] += size
            self.by_type[etype] += 1

    def merge(self, other: DropTally) -> None:
        self.count.update(other.count)
        self.nbytes.update(other.nbytes)
        self.by_type.update(other.by_type)

    def __bool__(self) -> bool:
        return bool(self.count)


class DropPolicy:
    """Dropping events by the policy (a base of OutboxStore, which owns the connection)."""

    max_bytes: int
    ttl_s: float
    counts: Counts

    @property
    def conn(self) -> sqlite3.Connection:
        raise NotImplementedError  # OutboxStore's

    def make_room(self, nrows: int, reason: str, *,
                  incoming: Sequence[InsertRow] | None = None) -> DropTally:
        """Drop the oldest lowest-priority events to make room on a full disk.

        Without `incoming`: `nrows` of them. With it: for each priority of the new events,
        from the lowest, events of that priority or below (never above: a burst of
        telemetry must not push out check-ins) until twice the new events' bytes of that
        priority are freed, a few rows at a time (a big chunk would drop more than needed)."""
        tally = DropTally()
        need: Counter[int] = Counter()
        if incoming is None:
            need[9] = 0
        else:
            for r in incoming:
                need[r[1]] += 2 * (r[4] + ROW_OVERHEAD)
        with self.counts.txn(self.conn):
            if not self._can_make_room(need):
                return tally  # some would be refused anyway: drop nothing for this group
            for prio in sorted(need):
                freed = 0
                while nrows > 0 or freed < need[prio]:
                    got = self._drop_lowest(tally, reason, max(nrows, 16), prio)
                    if got == 0:
                        break
                    freed += got
                    nrows = 0
        return tally

    def _can_make_room(self, need: Counter[int]) -> bool:
        """Whether events of each priority or below hold the room the new ones need."""
        wanted = 0
        for prio in sorted(need):
            wanted += need[prio]
            have = self.conn.execute(
                "SELECT coalesce(sum(size), 0) + ? * count(*) FROM events WHERE n <= ?",
                (ROW_OVERHEAD, key_range(prio)[1])).fetchone()[0]
            if have < wanted:
                return False
        return True

    def expire(self, now: float) -> DropTally:
        """Drop events older than the TTL, oldest committed first: each priority's events
        are walked in row order (no index of the times: schema.RETIRED_INDEXES), stopping at
        the first still young, so one committed after the clock was set back waits for those
        before it."""
        tally = DropTally()
        cutoff = now - self.ttl_s
        stale = [(lo, hi) for lo, hi, created in firsts(self.conn) if created < cutoff]
        if not stale:
            return tally  # the usual case, every 30 s: a row per priority read, no transaction
        with self.counts.txn(self.conn) as conn:
            for lo, hi in stale:
                while True:
                    rows = conn.execute(
                        "SELECT n, created FROM events WHERE n BETWEEN ? AND ? ORDER BY n"
                        " LIMIT ?", (lo, hi, EXPIRE_CHUNK)).fetchall()
                    old = [n for n, created in
                           itertools.takewhile(lambda r: r[1] < cutoff, rows)]
                    if old:
                        gone = conn.execute(
                            "DELETE FROM events WHERE n IN (SELECT value FROM json_each(?)) "
                            "RETURNING size, type", (json.dumps(old),)).fetchall()
                        tally.add("ttl", gone)
                        self._bump(-sum(s + ROW_OVERHEAD for s, _ in gone), -len(gone))
                    if len(old) < EXPIRE_CHUNK:
                        break
            if tally:
                self._count_drops(tally)
        return tally

    def _bump(self, delta_bytes: int, delta_events: int) -> None:
        """The buffered bytes and events (the quota's measure), in memory (counts.py)."""
        self.counts.bump(delta_bytes, delta_events)

    def _enforce_quota(self, tally: DropTally, reason: str) -> None:
        used = self.counts.totals[0]
        if used <= self.max_bytes:
            return
        # drop a little below the limit so that a full buffer does not drop on every commit
        target = int(self.max_bytes * 0.98)
        while used > target:
            freed = self._drop_lowest(tally, reason, 256)
            if freed == 0:
                break
            used -= freed

    def _drop_lowest(self, tally: DropTally, reason: str, nrows: int,
                     max_priority: int = 9) -> int:
        rows = self.conn.execute(
            "DELETE FROM events WHERE n IN (SELECT n FROM events WHERE n <= ?"
            " ORDER BY n ASC LIMIT ?) RETURNING size, type",
            (key_range(max_priority)[1], nrows),
        ).fetchall()
        if not rows:
            return 0
        freed = int(sum(s + ROW_OVERHEAD for s, _ in rows))
        self._bump(-freed, -len(rows))
        part = DropTally()
        part.add(reason, rows)
        self._count_drops(part)
        tally.merge(part)
        return freed

    def _count_drops(self, tally: DropTally) -> None:
        self.counts.save(self.conn)  # the counters' page is written anyway
        self.conn.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            [(f"dropped:{reason}", n) for reason, n in tally.count.items()],
        )

    def count_refused(self, n: int) -> None:
        """Record events refused outright (nothing left to drop on a full disk)."""
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute(
                "INSERT INTO counters (name, value) VALUES ('dropped:refused', ?)"
                " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (n,),
            )
