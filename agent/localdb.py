"""Opening the store's own SQLite files (store.db: orders, link cache, KPIs, consent) the one
way they are all used: shared across threads behind the caller's lock, autocommit with
explicit IMMEDIATE transactions, WAL, a busy timeout for the other processes (CLI imports,
the kiosk's reads)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from agent.outbox.reserve import release_reserve
from agent.outbox.store import is_disk_full


def open_db(path: Path, schema: str) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA busy_timeout=5000")
    db.executescript(schema)
    return db


@contextlib.contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that takes the lock up front and rolls back on any error.

    A commit that fails because the disk is full releases the agent's disk reserve (see
    agent/outbox/reserve.py) and is tried once more: a check-in must not fail for want of
    the space the reserve holds for exactly that."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    try:
        db.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        if db.in_transaction and is_disk_full(exc) and release_reserve():
            try:
                db.execute("COMMIT")
                return
            except sqlite3.OperationalError:
                pass
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
