"""Outbox schema and its migrations, versioned in PRAGMA user_version.

Plain SQL (the statements sqlite-utils wrote before, to the letter): importing sqlite-utils
also imports numpy when it is installed, which the QR camera's process needs; in the agent that
was 15 MiB of RSS and ~0.2 s of start-up, each time an outbox was made."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Final

from agent.localdb import immediate

# a row of the events table as the store inserts it: id, priority, type, created, size,
# bootid, body
InsertRow = tuple[str, int, str, float, int, str, str]

SCHEMA_VERSION = 1


def _v1(db: sqlite3.Connection) -> None:
    # AUTOINCREMENT: a row number is never reused, so a late PUBACK for a deleted row can
    # never delete a newer event that took its number
    db.execute(
        """CREATE TABLE events (
            n INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL,
            priority INTEGER NOT NULL,
            type TEXT NOT NULL,
            created REAL NOT NULL,
            size INTEGER NOT NULL,
            bootid TEXT NOT NULL,
            body TEXT NOT NULL
        )"""
    )
    # drain order and drop order both walk this index (DESC / ASC)
    db.execute('CREATE INDEX "events_by_priority"\n    ON "events" ("priority", "n")')
    db.execute('CREATE INDEX "events_by_created"\n    ON "events" ("created")')
    db.execute('CREATE TABLE "counters" (\n   "name" TEXT PRIMARY KEY,\n'
               '   "value" INTEGER NOT NULL\n)')
    db.execute("INSERT INTO counters (name, value) VALUES ('bytes', 0), ('events', 0)")


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _v1}

# Row numbers carry the priority: n = priority << KEY_SHIFT | count, the count one sequence
# for the whole file (store.py). The table's own order is then the drain order (priority,
# then commit order), so no index is written with an event: events_by_priority was a page
# of the write-ahead log with every commit, ~1 KiB of SD-card writes per event (bench-wear).
# The store gives every number itself, below LEGACY_FLOOR, where SQLite's AUTOINCREMENT
# sequence is set: its page is then never written by an insert either. Rows numbered the
# old way (a file from before, or rows an agent from before wrote after a rollback, which
# come above LEGACY_FLOOR) are renumbered when the writer opens the file (store.py); an
# agent from before reads keyed rows as any others, so an update can be rolled back.
KEY_SHIFT: Final = 40
KEY_MASK: Final = (1 << KEY_SHIFT) - 1
LEGACY_FLOOR: Final = 1 << 60
MAX_PRIORITY: Final = 9  # the envelope's range is 0 to 9


def key(priority: int, count: int) -> int:
    return (priority << KEY_SHIFT) | (count & KEY_MASK)


def key_range(priority: int) -> tuple[int, int]:
    """The first and last row number of a priority. The top one runs to the end: rows an
    agent from before numbered above LEGACY_FLOOR are read there until the writer renumbers
    them (a reader never writes)."""
    lo = priority << KEY_SHIFT
    return lo, (1 << 63) - 1 if priority >= MAX_PRIORITY else lo | KEY_MASK


def firsts(conn: sqlite3.Connection) -> list[tuple[int, int, float]]:
    """Each priority's range of row numbers that holds rows, with the creation time of its
    first row: the oldest committed of that priority (row order; no index of the times)."""
    out = []
    for p in range(MAX_PRIORITY + 1):
        lo, hi = key_range(p)
        row = conn.execute("SELECT created FROM events WHERE n BETWEEN ? AND ? ORDER BY n"
                           " LIMIT 1", (lo, hi)).fetchone()
        if row is not None:
            out.append((lo, hi, float(row[0])))
    return out


# Indexes no query needs any more. Each index is a page written to the log with every event
# committed: events_by_created cost ~1 KiB of SD-card writes per event (bench-wear) for the
# TTL sweep and the outbox's age, which walk each priority's events in row order; the drain
# order is the row order (above). Dropped by the writer when it opens a file, not by a new
# schema version: an agent from before this change still opens the file (it never recreates
# an index and only scans where it used it), so an update can be rolled back.
RETIRED_INDEXES = ("events_by_created", "events_by_priority")


def retire_indexes(conn: sqlite3.Connection) -> None:
    """Drop RETIRED_INDEXES where they still are; a file that cannot take the write now (a
    full disk, a busy lock) keeps them until the next open."""
    for name in RETIRED_INDEXES:
        try:
            conn.execute(f'DROP INDEX IF EXISTS "{name}"')
        except sqlite3.OperationalError:
            return


def next_count(conn: sqlite3.Connection) -> int:
    """One past the highest count the file's keyed rows carry: a seek per priority (inside
    the write lock, where another process writing the same file cannot give it meanwhile).
    Rows an older agent numbered above LEGACY_FLOOR are not keyed: their numbers say
    nothing of the counts given."""
    counts = [0]
    for p in range(MAX_PRIORITY + 1):
        lo, hi = key_range(p)
        top = conn.execute("SELECT max(n) FROM events WHERE n BETWEEN ? AND ?",
                           (lo, min(hi, LEGACY_FLOOR - 1))).fetchone()[0]
        if top is not None:
            counts.append(int(top) & KEY_MASK)
    return max(counts) + 1


RENUMBER_CHUNK: Final = 1000  # rows renumbered per transaction (each needs its room in the log)


def number_rows(conn: sqlite3.Connection) -> int:
    """Renumber rows numbered the old way (see KEY_SHIFT), oldest first, a chunk per
    transaction; set AUTOINCREMENT's sequence to LEGACY_FLOOR; return the next count the
    store gives. A disk too full for it leaves the rest for a later open: until then those
    rows are read with the lowest priority's, in commit order (nothing is lost)."""
    with immediate(conn):
        seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        if seq is None:
            conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)",
                         (LEGACY_FLOOR,))
        elif int(seq[0]) < LEGACY_FLOOR:
            conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'events'",
                         (LEGACY_FLOOR,))
    while True:
        with immediate(conn):
            count = next_count(conn)
            # numbered the old way: below KEY_MASK with another priority than 0, or above
            # the floor (an older agent's, after a rollback)
            old = conn.execute(
                "SELECT n, priority FROM events WHERE n <= ? AND priority <> 0"
                " UNION ALL SELECT n, priority FROM events WHERE n >= ? ORDER BY n LIMIT ?",
                (KEY_MASK, LEGACY_FLOOR, RENUMBER_CHUNK)).fetchall()
            for n, priority in old:
                p = min(max(int(priority), 0), MAX_PRIORITY)
                conn.execute("UPDATE events SET n = ?, priority = ? WHERE n = ?",
                             (key(p, count), p, n))
                count += 1
        if len(old) < RENUMBER_CHUNK:
            return count


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to SCHEMA_VERSION; returns the version found before."""
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"outbox schema version {found} is newer than this agent ({SCHEMA_VERSION})"
        )
    if found == SCHEMA_VERSION:
        return found
    for version in range(found + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # another process may have migrated while we waited for the write lock
            if int(conn.execute("PRAGMA user_version").fetchone()[0]) >= version:
                conn.execute("COMMIT")
                continue
            MIGRATIONS[version](conn)
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return found
