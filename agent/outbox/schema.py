"""Outbox schema and its migrations, versioned in PRAGMA user_version.

Plain SQL (the statements sqlite-utils wrote before, to the letter): importing sqlite-utils
also imports numpy when it is installed, which the QR camera's process needs; in the agent that
was 15 MiB of RSS and ~0.2 s of start-up, each time an outbox was made."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

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

# Indexes the first release made that no query needs any more. Each index is a page written
# to the log with every event committed: events_by_created cost ~1 KiB of SD-card writes per
# event (bench-wear) for the TTL sweep and the outbox's age, which now walk the events in
# row order (agent/outbox/drops.py, reader.py). Dropped by the writer when it opens a file,
# not by a new schema version: an agent from before this change still opens the file (it
# never recreates the index and only scans where it used it), so an update can be rolled back.
RETIRED_INDEXES = ("events_by_created",)


def retire_indexes(conn: sqlite3.Connection) -> None:
    """Drop RETIRED_INDEXES where they still are; a file that cannot take the write now (a
    full disk, a busy lock) keeps them until the next open."""
    for name in RETIRED_INDEXES:
        try:
            conn.execute(f'DROP INDEX IF EXISTS "{name}"')
        except sqlite3.OperationalError:
            return


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
