"""The outbox's buffered bytes and events (the quota's measure, `status`'s depth), kept in
memory by the writer and written to the `counters` table now and then (part of the store,
on the writer's thread).

Written in every transaction, the two counters were a page of the write-ahead log with every
event: ~1 KiB of SD-card writes per event (bench-wear). Now the changes are added to the
file's values every SAVE_S, in a transaction made anyway (or one of their own, when due and
none comes), with any drop counted, and when the file is closed. Additions, not values: an
other process writing the same file adds its own. The `clean` row says whether they are
exact: 0 while a writer has the file open, 1 once the last one closed it. A writer that opens
the file alone (an exclusive flock on `<outbox>-writers`, held shared while open) after a
stop that was not clean counts the table again; one beside another live writer trusts the
file (the other's changes reach it at its next save).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from agent.localdb import immediate

SAVE_S: Final = 30.0  # how stale the file's counters may be while the agent runs


class Counts:
    def __init__(self, path: Path, row_overhead: int) -> None:
        self._lock_path = Path(f"{path}-writers")
        self._row_overhead = row_overhead
        self._fd: int | None = None
        self._saved = (0, 0)  # bytes, events in the file at the last save
        self._bytes = 0  # changes since
        self._events = 0
        self._saved_at = time.monotonic()
        self.totals = (0, 0)  # bytes, events: read by other threads (one tuple, one store)

    # --- open and close -----------------------------------------------------------------

    def load(self, conn: sqlite3.Connection) -> None:
        """Read the file's counters at open; counted again when not exact and alone."""
        alone = self._lock()
        with immediate(conn):
            values = dict(conn.execute("SELECT name, value FROM counters").fetchall())
            if alone and values.get("clean") != 1:
                events, size = conn.execute(
                    "SELECT count(*), coalesce(sum(size), 0) FROM events").fetchone()
                values["bytes"] = int(size) + self._row_overhead * int(events)
                values["events"] = int(events)
                conn.executemany("UPDATE counters SET value = ? WHERE name = ?",
                                 ((values["bytes"], "bytes"), (values["events"], "events")))
            if values.get("clean") != 0:
                conn.execute("INSERT INTO counters (name, value) VALUES ('clean', 0)"
                             " ON CONFLICT(name) DO UPDATE SET value = 0")
        self._saved = (int(values.get("bytes", 0)), int(values.get("events", 0)))
        self._bytes = self._events = 0
        self._saved_at = time.monotonic()
        self.totals = self._saved

    def close(self, conn: sqlite3.Connection) -> None:
        """Save the changes; the last writer out marks the counters exact."""
        with contextlib.suppress(sqlite3.Error), immediate(conn):
            self.save(conn)
            if self._last_out():
                conn.execute("UPDATE counters SET value = 1 WHERE name = 'clean'")
        self._unlock()

    # --- in transactions ----------------------------------------------------------------

    def bump(self, delta_bytes: int, delta_events: int) -> None:
        self._bytes += delta_bytes
        self._events += delta_events
        self.totals = (self._saved[0] + self._bytes, self._saved[1] + self._events)

    def due(self) -> bool:
        return bool(self._bytes or self._events) and (
            time.monotonic() - self._saved_at >= SAVE_S)

    def save(self, conn: sqlite3.Connection) -> None:
        """Add the changes to the file's counters, inside the caller's transaction."""
        self._saved_at = time.monotonic()
        if not (self._bytes or self._events):
            return
        conn.executemany("UPDATE counters SET value = value + ? WHERE name = ?",
                         ((self._bytes, "bytes"), (self._events, "events")))
        values = dict(conn.execute(
            "SELECT name, value FROM counters WHERE name IN ('bytes', 'events')").fetchall())
        self._saved = (int(values["bytes"]), int(values["events"]))
        self._bytes = self._events = 0
        self.totals = self._saved

    @contextlib.contextmanager
    def txn(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction whose changes to the counts go if it is rolled back."""
        before = (self._saved, self._bytes, self._events, self.totals, self._saved_at)
        try:
            with immediate(conn) as c:
                yield c
        except BaseException:
            self._saved, self._bytes, self._events, self.totals, self._saved_at = before
            raise

    # --- the writers' lock --------------------------------------------------------------

    def _lock(self) -> bool:
        """Whether this writer is alone on the file; holds the lock shared from now on."""
        self._unlock()
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return False  # no room for it, or a read-only place: trust the file
        self._fd = fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except OSError:
            alone = False
        fcntl.flock(fd, fcntl.LOCK_SH)
        return alone

    def _last_out(self) -> bool:
        if self._fd is None:
            return False
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    def _unlock(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # the flock goes with it
            self._fd = None
