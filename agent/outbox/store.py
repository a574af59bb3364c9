"""The outbox database: one SQLite file in WAL mode, one connection per thread.

Policy (documented in the README):
- drain order: highest priority first, then commit order (the row numbers' order:
  agent/outbox/schema.py);
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from agent.errors import AgentError, Reason
from agent.outbox.counts import Counts
from agent.outbox.dbfile import (
    connect,
    disk_free,
    disk_size,
    headroom_for,
    integrity_problem,
    log_bytes_for,
    refuse_foreign,
    wal_pages_for,
)

# re-exported: the writer takes them from here
from agent.outbox.dbfile import inode_of as inode_of
from agent.outbox.dbfile import is_corruption as is_corruption
from agent.outbox.dbfile import is_disk_full as is_disk_full
from agent.outbox.dbfile import quarantine as quarantine
from agent.outbox.dbfile import watch_corruption as watch_corruption
from agent.outbox.drops import ROW_OVERHEAD as ROW_OVERHEAD
from agent.outbox.drops import DropPolicy
from agent.outbox.drops import DropTally as DropTally  # the writer's and room's
from agent.outbox.reserve import release_reserve
from agent.outbox.salvage import salvage
from agent.outbox.schema import (
    MAX_PRIORITY,
    key,
    migrate,
    next_count,
    number_rows,
    retire_indexes,
)
from agent.outbox.schema import InsertRow as InsertRow  # the writer's rows

log = logging.getLogger(__name__)

INDEX_ENTRY_BYTES: Final = 48  # a row's entries in the two indexes, with their cell headers
ACK_CHUNK: Final = 256  # acknowledged rows deleted per transaction on a full disk


@dataclass(slots=True)
class Row:
    n: int
    priority: int
    created: float
    bootid: str
    body: str


def pages_for(inserts: Sequence[InsertRow], page_size: int) -> int:
    """Pages the new rows take, at most: whole rows per leaf page (a row of more than half a
    small page takes one on its own), their index entries, and two pages over (the last leaf
    and an index page are filled partly)."""
    usable = page_size - 8  # a leaf page's header
    leaves = 0.0
    for r in inserts:
        row = r[4] + ROW_OVERHEAD
        # 4 bytes a cell: its pointer and header; a longer row spills into overflow pages
        leaves += 1 / (usable // (row + 4)) if row + 4 <= usable else -(-row // (usable - 4))
    return int(leaves) + 1 + -(-len(inserts) * INDEX_ENTRY_BYTES // usable) + 2


class OutboxStore(DropPolicy):
    """Write side of the outbox. Confined to one thread (the writer).

    On a disk too full even to open the file (SQLite needs room for its -shm and -wal), the
    store starts closed and tries again at each use, raising a disk-full error meanwhile: the
    agent runs, refuses events by the full-disk policy and drains once it can."""

    _count = 1  # the next row number's count (schema.KEY_SHIFT), set when the file opens

    def __init__(self, path: Path, *, max_bytes: int, ttl_s: float) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.headroom = headroom_for(max_bytes, disk_size(path.parent))
        self.counts = Counts(path, ROW_OVERHEAD)
        self._conn: sqlite3.Connection | None = self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = connect(self.path)
        try:
            page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
            conn.execute(f"PRAGMA wal_autocheckpoint = "
                         f"{wal_pages_for(self.headroom, page_size)}")
            # a log grown past twice its usual size (a long read held a checkpoint back) is
            # cut back to that at its next reset; below, it is written over, never regrown
            conn.execute(f"PRAGMA journal_size_limit = {2 * log_bytes_for(self.headroom)}")
            migrate(conn)
            try:
                self._count = number_rows(conn)
            except sqlite3.OperationalError as exc:
                if not is_disk_full(exc):
                    raise
                # the rest is renumbered at a later open; the rows are all read meanwhile
                log.warning("the outbox's disk is too full to renumber its rows now (%s)", exc)
                self._count = next_count(conn)
            retire_indexes(conn)
            self.counts.load(conn)
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
            store.counts = Counts(path, ROW_OVERHEAD)
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
            self.counts.close(self._conn)
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    # --- transactions -------------------------------------------------------------------

    def transact(
        self, inserts: Sequence[InsertRow], acks: Sequence[int], drop_reason: str = "quota"
    ) -> tuple[DropTally, list[int]]:
        """Insert new events and delete acknowledged ones in one IMMEDIATE transaction,
        then enforce the quota. Returns the drops and the new rows' numbers, in order.
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
        return DropTally(), []

    def _transact(
        self, inserts: Sequence[InsertRow], acks: Sequence[int], drop_reason: str
    ) -> tuple[DropTally, list[int]]:
        # Deletes of acknowledged rows alone need no fsync of their own: the next commit's
        # fsync (events, or a checkpoint) writes them out with it, and a power cut before that
        # only brings the rows back to be sent again (at least once, as a PUBACK lost with the
        # connection). Other connections see them gone at once. Their own fsync cost a second
        # sync and ~8 KiB of disk writes per event. Set before every transaction, so that
        # events are never committed without theirs.
        self.conn.execute(f"PRAGMA synchronous = {'FULL' if inserts else 'NORMAL'}")
        return self._transact_synced(inserts, acks, drop_reason)

    def _transact_synced(
        self, inserts: Sequence[InsertRow], acks: Sequence[int], drop_reason: str
    ) -> tuple[DropTally, list[int]]:
        tally = DropTally()
        numbers: list[int] = []
        if inserts:
            self._check_room(inserts)
        with self.counts.txn(self.conn) as conn:
            delta_bytes = 0
            delta_events = 0
            if acks:
                # deletes first: the new rows take the room of the acknowledged ones on the
                # same leaf page, where inserting first would split it (more pages written)
                freed, gone = self._delete_rows(acks)
                delta_bytes -= freed
                delta_events -= gone
            if inserts:
                # numbered here (schema.KEY_SHIFT): never a count given before while the file
                # is open, even by a rolled-back transaction, nor one another process gave
                count = max(self._count, next_count(conn))
                self._count = count + len(inserts)
                rows = []
                for i, r in enumerate(inserts):
                    priority = min(max(r[1], 0), MAX_PRIORITY)
                    numbers.append(key(priority, count + i))
                    rows.append((numbers[-1], r[0], priority, *r[2:]))
                conn.executemany(
                    "INSERT INTO events (n, id, priority, type, created, size, bootid, body)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                delta_bytes += sum(r[4] for r in inserts) + ROW_OVERHEAD * len(inserts)
                delta_events += len(inserts)
            self._bump(delta_bytes, delta_events)
            if inserts:
                self._enforce_quota(tally, drop_reason)
            if self.counts.due():
                self.counts.save(conn)  # now and then, on pages written anyway
        return tally, numbers

    def _check_room(self, inserts: Sequence[InsertRow]) -> None:
        """Refuse (as a full disk) a write that would grow the file while the disk has less
        than its headroom left and the file's free pages cannot take it: the writer then
        drops by policy (make_room) and tries again, and the new rows take the freed pages."""
        free = disk_free(self.path.parent)
        if free >= self.headroom:
            return
        page_size, free_pages = (self.conn.execute(f"PRAGMA {p}").fetchone()[0]
                                 for p in ("page_size", "freelist_count"))
        if free_pages >= pages_for(inserts, page_size):
            return
        raise sqlite3.OperationalError(
            f"database or disk is full: {free >> 10} KiB left on the outbox's disk, kept for "
            "its write-ahead log")

    def erase(self, needles: Sequence[str]) -> int:
        """Delete every waiting event whose body mentions any of `needles` (a data subject's
        identifiers, as they appear in JSON); returns how many. The freed pages are then
        overwritten (secure_delete), so nothing of them stays in the file."""
        if not needles:
            return 0
        self.conn.execute("PRAGMA synchronous = FULL")  # an erasure is never undone
        with self.counts.txn(self.conn) as conn:
            conn.execute("PRAGMA secure_delete = ON")
            rows = []
            for needle in needles:
                rows += conn.execute("DELETE FROM events WHERE instr(body, ?) > 0 "
                                     "RETURNING size", (needle,)).fetchall()
            self._bump(-sum(size + ROW_OVERHEAD for (size,) in rows), -len(rows))
            self.counts.save(conn)
        # old page images in the write-ahead log would still hold them
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(rows)

    def save_counts(self) -> None:
        """The buffered bytes and events into the file when due and no events came."""
        if self.is_open and self.counts.due():
            with self.counts.txn(self.conn) as conn:
                self.counts.save(conn)

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
