"""The outbox database: one SQLite file in WAL mode, one connection per thread.

Policy (documented in the README):
- drain order: highest priority first, then commit order;
- quota: when the buffered events exceed `max_bytes` (body plus a fixed per-row overhead), the
  oldest events of the lowest priority are dropped first until they fit;
- TTL: events older than `ttl_days` are dropped;
- disk full: the same drop order frees room for new events; if nothing can be freed the new
  events are refused with an error.
Every drop is counted in the `counters` table by reason and reported by the writer as an event.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import AgentError, Reason
from agent.localdb import immediate
from agent.outbox.schema import migrate

ROW_OVERHEAD = 96  # index entries and row header per event, measured on the schema
BUSY_TIMEOUT_MS = 10_000
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
SQLITE_FULL = 13


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


# id, priority, type, created, size, bootid, body
InsertRow = tuple[str, int, str, float, int, str, str]


def is_corruption(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and (code & 0xFF) in _CORRUPT_CODES:
        return True
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def is_disk_full(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and (code & 0xFF) == SQLITE_FULL:
        return True
    return "database or disk is full" in str(exc).lower()


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not readonly:
        # must precede the first table so that drained space can be handed back
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch {path} to WAL (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
    return conn


def quarantine(path: Path, clock: float | None = None) -> Path:
    """Move a damaged database (and its WAL/SHM) aside with a timestamp; return the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    i = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{i}")
        i += 1
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            os.replace(side, Path(str(target) + suffix))
    return target


class OutboxStore:
    """Write side of the outbox. Confined to one thread (the writer)."""

    def __init__(self, path: Path, *, max_bytes: int, ttl_s: float) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.conn = connect(path)
        migrate(self.conn)

    @classmethod
    def open(
        cls, path: Path, *, max_bytes: int, ttl_s: float
    ) -> tuple[OutboxStore, Path | None, str]:
        """Open, checking integrity; a damaged file is moved aside and a fresh one started.

        Returns (store, quarantined path or None, why it was quarantined).
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        # A WAL left behind means the last run did not close cleanly (power cut, kill):
        # only then is the whole file checked, which reads all of it and takes a while.
        unclean = Path(str(path) + "-wal").exists() or not path.exists()
        try:
            store = cls(path, max_bytes=max_bytes, ttl_s=ttl_s)
            if unclean:
                verdict = store.conn.execute("PRAGMA quick_check").fetchone()[0]
            else:  # header, schema and the counters page still have to read back
                store.conn.execute("SELECT count(*) FROM counters").fetchone()
                verdict = "ok"
            if verdict != "ok":
                store.close()
                raise sqlite3.DatabaseError(f"integrity check failed: {verdict}")
            return store, None, ""
        except sqlite3.DatabaseError as exc:
            # a locked or unreachable file is not damage: say so rather than move it aside.
            # A damaged file, or one written by a newer agent, is kept aside so that capture
            # goes on after a downgrade.
            if isinstance(exc, sqlite3.OperationalError) and not is_corruption(exc):
                raise AgentError(
                    Reason.OUTBOX_CORRUPT, f"cannot open outbox {path}: {exc}"
                ) from exc
            moved = quarantine(path)
            store = cls(path, max_bytes=max_bytes, ttl_s=ttl_s)
            return store, moved, str(exc)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    # --- transactions -------------------------------------------------------------------

    def transact(
        self, inserts: Sequence[InsertRow], acks: Sequence[int], drop_reason: str = "quota"
    ) -> tuple[DropTally, int]:
        """Insert new events and delete acknowledged ones in one IMMEDIATE transaction,
        then enforce the quota. Returns the drops and the row number of the first insert.
        Raises sqlite3 errors unchanged (the writer classifies them)."""
        tally = DropTally()
        first_n = 0
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

    def make_room(self, nrows: int, reason: str) -> DropTally:
        """Drop the `nrows` oldest lowest-priority events (used when the disk is full)."""
        tally = DropTally()
        with immediate(self.conn):
            self._drop_lowest(tally, reason, nrows)
        return tally

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

    def _drop_lowest(self, tally: DropTally, reason: str, nrows: int) -> int:
        rows = self.conn.execute(
            "DELETE FROM events WHERE n IN (SELECT n FROM events ORDER BY priority ASC, n ASC"
            " LIMIT ?) RETURNING size, type",
            (nrows,),
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
