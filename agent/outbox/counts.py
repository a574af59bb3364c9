"""The outbox's buffered bytes and events (the quota's measure, `status`'s depth), kept in
memory by the writer and written to the `counters` table now and then (part of the store,
on the writer's thread).

Written in every transaction, the two counters were a page of the write-ahead log with every
event: ~1 KiB of SD-card writes per event (bench-wear). Now the changes are added to the
file's values every SAVE_S, in a transaction made anyway (or one of their own, when due and
none comes), with any drop counted, and when the file is closed. Additions, not values: an
other process writing the same file adds its own. The `writers` row counts the writers that
have the file open: each adds 1 at open and takes it back at a clean close. A writer that
opens the file alone (an exclusive flock on `<outbox>-writers`, held shared while open) and
finds it above 0 — some writer stopped without closing — counts the table again; one beside
another live writer trusts the file (the other's changes reach it at its next save).
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
        try:
            with immediate(conn):
                values = dict(conn.execute("SELECT name, value FROM counters").fetchall())
                if alone and values.get("writers") != 0:
                    # a writer before did not close the file (or one from before the count of
                    # writers): what it had not saved is in the table only
                    events, size = conn.execute(
                        "SELECT count(*), coalesce(sum(size), 0) FROM events").fetchone()
                    values["bytes"] = int(size) + self._row_overhead * int(events)
                    values["events"] = int(events)
                    conn.executemany(
                        "UPDATE counters SET value = ? WHERE name = ?",
                        ((values["bytes"], "bytes"), (values["events"], "events")))
                # alone: this writer is the one; beside others: one more
                conn.execute(
                    "INSERT INTO counters (name, value) VALUES ('writers', 1) ON CONFLICT(name)"
                    " DO UPDATE SET value = CASE WHEN ? THEN 1 ELSE value + 1 END", (alone,))
        except BaseException:
            self._unlock()
            raise
        finally:
            self._share()
        self._saved = (int(values.get("bytes", 0)), int(values.get("events", 0)))
        self._bytes = self._events = 0
        self._saved_at = time.monotonic()
        self.totals = self._saved

    def close(self, conn: sqlite3.Connection) -> None:
        """Save the changes and count this writer out (a file whose count of writers stays
        above 0 is counted again by the next writer that opens it alone)."""
        with contextlib.suppress(sqlite3.Error), immediate(conn):
            self.save(conn)
            conn.execute("UPDATE counters SET value = value - 1 WHERE name = 'writers'")
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
        """Whether this writer is alone on the file; if so it holds the lock exclusive until
        `_share` (another writer opening meanwhile waits), else shared."""
        self._unlock()
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return False  # no room for it, or a read-only place: trust the file
        self._fd = fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fcntl.flock(fd, fcntl.LOCK_SH)
            return False
        return True

    def _share(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_SH)

    def _unlock(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # the flock goes with it
            self._fd = None
