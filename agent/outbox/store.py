"""The outbox database: one SQLite file in WAL mode, one connection per thread.

Policy (documented in the README):
- drain order: highest priority first, then commit order;
- quota: when the buffered events exceed `max_bytes` (body plus a fixed per-row overhead), the
  oldest events of the lowest priority are dropped first until they fit;
- TTL: events older than `ttl_days` are dropped;
- disk full: the disk reserve is released first; then the same drop order frees room for new
  events, never taking an event above the new ones' priority; if nothing of their priority or
  below is left, the new events are refused with an error. Below its headroom free on its
  disk the file stops growing (new events take the pages of dropped ones), so the write-ahead
  log always has room and acknowledged rows can always be deleted: the backlog drains.
- damage: the whole file is checked at every start, and damage met later by a read or a write
  moves the file aside (`<name>.corrupt-<time>`) and a fresh one is started.
Every drop is counted in the `counters` table by reason and reported by the writer as an event.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from agent.errors import AgentError, Reason
from agent.localdb import immediate
from agent.outbox.dbfile import (
    connect,
    disk_free,
    disk_size,
    headroom_for,
    integrity_problem,
    refuse_foreign,
    wal_pages_for,
)

# re-exported: the writer takes them from here
from agent.outbox.dbfile import inode_of as inode_of
from agent.outbox.dbfile import is_corruption as is_corruption
from agent.outbox.dbfile import is_disk_full as is_disk_full
from agent.outbox.dbfile import quarantine as quarantine
from agent.outbox.dbfile import watch_corruption as watch_corruption
from agent.outbox.reserve import release_reserve
from agent.outbox.salvage import salvage
from agent.outbox.schema import InsertRow as InsertRow  # the writer's rows
from agent.outbox.schema import migrate

log = logging.getLogger(__name__)

ROW_OVERHEAD = 96  # index entries and row header per event, measured on the schema
ACK_CHUNK: Final = 256  # acknowledged rows deleted per transaction on a full disk


@dataclass(slots=True)
class Row:
    n: int
    priority: int
    created: float
    bootid: str
    body: str


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


class OutboxStore:
    """Write side of the outbox. Confined to one thread (the writer).

    On a disk too full even to open the file (SQLite needs room for its -shm and -wal), the
    store starts closed and tries again at each use, raising a disk-full error meanwhile: the
    agent runs, refuses events by the full-disk policy and drains once it can."""

    def __init__(self, path: Path, *, max_bytes: int, ttl_s: float) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.headroom = headroom_for(max_bytes, disk_size(path.parent))
        self._conn: sqlite3.Connection | None = self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = connect(self.path)
        try:
            conn.execute(f"PRAGMA wal_autocheckpoint = {wal_pages_for(self.headroom)}")
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                conn = self._connect()
                problem = integrity_problem(conn)
            except sqlite3.DatabaseError as exc:
                if is_disk_full(exc):
                    raise sqlite3.OperationalError(
                        f"database or disk is full: cannot open the outbox {self.path} "
                        f"({exc})") from exc
                raise
            if problem is not None:
                conn.close()
                raise sqlite3.DatabaseError(f"database disk image is malformed: {problem}")
            self._conn = conn
            log.warning("the outbox %s is open again: the disk has room", self.path)
        return self._conn

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    @classmethod
    def open(
        cls, path: Path, *, max_bytes: int, ttl_s: float
    ) -> tuple[OutboxStore, Path | None, str]:
        """Open, checking integrity; a damaged file is moved aside and a fresh one started.

        The whole file is checked (quick_check, bounded by CHECK_BUDGET_S) at every start, a
        clean stop included: pages damaged while the agent was stopped would otherwise be met
        only by a read in the middle of a drain. A full disk gives up the disk reserve and
        tries again; still full, the store starts closed (see the class).

        Returns (store, quarantined path or None, why it was quarantined). A file that is no
        database at all (the config file, named by mistake) is refused (ConfigError), never
        moved aside or written.
        """
        refuse_foreign(path, "[outbox] path")
        try:
            return cls._open_checked(path, max_bytes=max_bytes, ttl_s=ttl_s)
        except sqlite3.DatabaseError as exc:
            if not is_disk_full(exc):
                raise
            if release_reserve():
                log.warning("the outbox's disk is full at start: its reserve is released")
                with contextlib.suppress(sqlite3.DatabaseError):
                    return cls._open_checked(path, max_bytes=max_bytes, ttl_s=ttl_s)
            log.error("the outbox's disk is full: %s cannot be opened (%s); events are "
                      "refused until there is room: free disk space on the device", path, exc)
            store = cls.__new__(cls)
            store.path, store.max_bytes, store.ttl_s = path, max_bytes, ttl_s
            store.headroom = headroom_for(max_bytes, disk_size(path.parent))
            store._conn = None
            return store, None, ""

    @classmethod
    def _open_checked(
        cls, path: Path, *, max_bytes: int, ttl_s: float
    ) -> tuple[OutboxStore, Path | None, str]:
        store: OutboxStore | None = None
        try:
            store = cls(path, max_bytes=max_bytes, ttl_s=ttl_s)
            problem = integrity_problem(store.conn)
            if problem is not None:
                raise sqlite3.DatabaseError(f"integrity check failed: {problem}")
            return store, None, ""
        except sqlite3.DatabaseError as exc:
            if store is not None:
                store.close()  # before the file is moved: no connection is left behind
            # a locked, unreachable or full disk is not damage: say so rather than move it
            # aside. A damaged file, or one written by a newer agent, is kept aside so that
            # capture goes on after a downgrade.
            if is_disk_full(exc):
                raise
            if isinstance(exc, sqlite3.OperationalError) and not is_corruption(exc):
                raise AgentError(
                    Reason.OUTBOX_CORRUPT, f"cannot open outbox {path}: {exc}"
                ) from exc
            moved = quarantine(path)
            fresh = cls(path, max_bytes=max_bytes, ttl_s=ttl_s)
            return fresh, moved, f"{exc}{fresh.recover(moved)}"

    def recover(self, damaged: Path) -> str:
        """Copy what still reads back in the file moved aside; says how much, for the notice."""
        try:
            n = salvage(self, damaged)
        except sqlite3.DatabaseError as exc:  # the fresh file: the writer meets it next
            log.error("recovering events from %s failed: %s", damaged, exc)
            return ""
        return f"; {n} events recovered from it" if n else ""

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    # --- transactions -------------------------------------------------------------------

    def transact(
        self, inserts: Sequence[InsertRow], acks: Sequence[int], drop_reason: str = "quota"
    ) -> tuple[DropTally, int]:
        """Insert new events and delete acknowledged ones in one IMMEDIATE transaction,
        then enforce the quota. Returns the drops and the row number of the first insert.
        Raises sqlite3 errors unchanged (the writer classifies them)."""
        tight = not inserts and len(acks) > ACK_CHUNK
        if not tight or disk_free(self.path.parent) >= self.headroom:
            try:
                return self._transact(inserts, acks, drop_reason)
            except sqlite3.OperationalError as exc:
                if not tight or not is_disk_full(exc):
                    raise
        # A full disk: thousands of deletes in one transaction need more write-ahead log than
        # is left (measured: 2,000 rows did not fit in 900 KiB). A few at a time, each
        # checkpointed into place, so that the next one reuses the same room in the log
        # (RESTART: it waits for a reader still on an older snapshot, which would keep the
        # log growing — the uplink reads while these are deleted).
        for i in range(0, len(acks), ACK_CHUNK):
            self.conn.execute("PRAGMA wal_checkpoint(RESTART)")
            self._transact([], acks[i : i + ACK_CHUNK], drop_reason)
        return DropTally(), 0

    def _transact(
        self, inserts: Sequence[InsertRow], acks: Sequence[int], drop_reason: str
    ) -> tuple[DropTally, int]:
        tally = DropTally()
        first_n = 0
        if inserts:
            self._check_room(inserts)
        with immediate(self.conn) as conn:
            delta_bytes = 0
            delta_events = 0
            if inserts:
                # under the write lock with AUTOINCREMENT, our rows are numbered seq+1, seq+2, ...
                row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name='events'").fetchone()
                first_n = (row[0] if row else 0) + 1
                conn.executemany(
                    "INSERT INTO events (id, priority, type, created, size, bootid, body)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    inserts,
                )
                delta_bytes += sum(r[4] for r in inserts) + ROW_OVERHEAD * len(inserts)
                delta_events += len(inserts)
            if acks:
                freed, gone = self._delete_rows(acks)
                delta_bytes -= freed
                delta_events -= gone
            self._bump(delta_bytes, delta_events)
            if inserts:
                self._enforce_quota(tally, drop_reason)
        return tally, first_n

    def _check_room(self, inserts: Sequence[InsertRow]) -> None:
        """Refuse (as a full disk) a write that would grow the file while the disk has less
        than its headroom left and the file's free pages cannot take it: the writer then
        drops by policy (make_room) and tries again, and the new rows take the freed pages."""
        free = disk_free(self.path.parent)
        if free >= self.headroom:
            return
        need = sum(r[4] + ROW_OVERHEAD for r in inserts)
        page_size, free_pages = (self.conn.execute(f"PRAGMA {p}").fetchone()[0]
                                 for p in ("page_size", "freelist_count"))
        # two pages over: the last leaf and an index page are filled partly
        if free_pages * page_size >= need + 2 * page_size:
            return
        raise sqlite3.OperationalError(
            f"database or disk is full: {free >> 10} KiB left on the outbox's disk, kept for "
            "its write-ahead log")

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
        with immediate(self.conn):
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
                "SELECT coalesce(sum(size), 0) + ? * count(*) FROM events WHERE priority <= ?",
                (ROW_OVERHEAD, prio)).fetchone()[0]
            if have < wanted:
                return False
        return True

    def expire(self, now: float) -> DropTally:
        """Drop events older than the TTL."""
        tally = DropTally()
        with immediate(self.conn) as conn:
            cutoff = now - self.ttl_s
            rows = conn.execute(
                "DELETE FROM events WHERE created < ? RETURNING size, type", (cutoff,)
            ).fetchall()
            if rows:
                tally.add("ttl", rows)
                self._bump(-sum(s + ROW_OVERHEAD for s, _ in rows), -len(rows))
                self._count_drops(tally)
        return tally

    def erase(self, needles: Sequence[str]) -> int:
        """Delete every waiting event whose body mentions any of `needles` (a data subject's
        identifiers, as they appear in JSON); returns how many. The freed pages are then
        overwritten (secure_delete), so nothing of them stays in the file."""
        if not needles:
            return 0
        with immediate(self.conn) as conn:
            conn.execute("PRAGMA secure_delete = ON")
            rows = []
            for needle in needles:
                rows += conn.execute("DELETE FROM events WHERE instr(body, ?) > 0 "
                                     "RETURNING size", (needle,)).fetchall()
            self._bump(-sum(size + ROW_OVERHEAD for (size,) in rows), -len(rows))
        # old page images in the write-ahead log would still hold them
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(rows)

    def vacuum_some(self, pages: int = 2048) -> None:
        if not self.is_open or disk_free(self.path.parent) < 2 * self.headroom:
            return  # on a nearly full disk the free pages are kept for the next events
        # incremental_vacuum only runs to completion through executescript
        self.conn.executescript(f"PRAGMA incremental_vacuum({int(pages)});")

    # --- helpers inside a transaction ---------------------------------------------------

    def _delete_rows(self, rowids: Sequence[int]) -> tuple[int, int]:
        # one statement for any number of rows: IN lists of varying length would each be
        # compiled and cached as a separate (large) prepared statement
        freed = 0
        gone = 0
        for (size,) in self.conn.execute(
            "DELETE FROM events WHERE n IN (SELECT value FROM json_each(?)) RETURNING size",
            (json.dumps(list(rowids)),),
        ):
            freed += size + ROW_OVERHEAD
            gone += 1
        return freed, gone

    def _bump(self, delta_bytes: int, delta_events: int) -> None:
        if delta_bytes or delta_events:
            self.conn.executemany(
                "UPDATE counters SET value = value + ? WHERE name = ?",
                ((delta_bytes, "bytes"), (delta_events, "events")),
            )

    def _enforce_quota(self, tally: DropTally, reason: str) -> None:
        used = self.conn.execute("SELECT value FROM counters WHERE name='bytes'").fetchone()[0]
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
            "DELETE FROM events WHERE n IN (SELECT n FROM events WHERE priority <= ?"
            " ORDER BY priority ASC, n ASC LIMIT ?) RETURNING size, type",
            (max_priority, nrows),
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
