"""Recovering what is still readable in an outbox file that was moved aside as damaged.

A damaged page takes the events on it; it must not take the rest of a backlog (an outage's
check-ins, waiting for the broker) with it. The events that still read back are copied into
the fresh outbox, oldest first, stepping over damaged stretches; the file aside stays as it is.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import quote

from agent.outbox.dbfile import is_disk_full
from agent.outbox.schema import SCHEMA_VERSION, InsertRow


class Target(Protocol):
    """Where recovered events go: the fresh outbox's store (agent/outbox/store.py, which
    calls salvage — so it is named by what it does, not imported)."""

    def transact(self, inserts: Sequence[InsertRow], acks: Sequence[int]) -> object: ...

log = logging.getLogger(__name__)

# bounded: it runs before the agent is ready (a 256 MiB outbox copies in a few seconds here)
SALVAGE_BUDGET_S: Final = 20.0
CHUNK: Final = 2000  # rows per read and per transaction


def _open(damaged: Path) -> sqlite3.Connection | None:
    """Read-only, with the write-ahead log moved aside with it (its latest commits), or the
    file alone when that cannot be read."""
    for extra in ("", "&immutable=1"):
        uri = f"file:{quote(str(damaged))}?mode=ro{extra}"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        except sqlite3.Error:
            continue
        try:
            if int(conn.execute("PRAGMA user_version").fetchone()[0]) != SCHEMA_VERSION:
                conn.close()  # another version's layout: not ours to read
                return None
            return conn
        except sqlite3.Error:
            conn.close()
    return None


def _as_insert(row: tuple[Any, ...]) -> InsertRow | None:
    """A row as the store inserts it, or None if a damaged page left it the wrong shape."""
    _, ev_id, prio, etype, created, size, bootid, body = row
    if not all(isinstance(v, str) for v in (ev_id, etype, bootid, body)):
        return None
    if not (isinstance(prio, int) and isinstance(size, int)
            and isinstance(created, int | float)):
        return None
    return (ev_id, prio, etype, float(created), size, bootid, body)


def salvage(store: Target, damaged: Path, budget_s: float = SALVAGE_BUDGET_S) -> int:
    """Copy the events still readable in `damaged` into `store`; how many were copied."""
    conn = _open(damaged)
    if conn is None:
        return 0
    deadline = time.monotonic() + budget_s
    copied = 0
    after, step = -1, 1
    with contextlib.closing(conn):
        try:  # the last row number ever given: past it there is nothing to look for
            last = int(conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()[0])
        except (sqlite3.DatabaseError, TypeError, ValueError):
            last = 1 << 62
        while time.monotonic() < deadline and after < last:
            rows: list[tuple[Any, ...]] = []
            try:  # row by row: what was read before a damaged page is kept
                for row in conn.execute(
                        "SELECT n, id, priority, type, created, size, bootid, body FROM events"
                        " WHERE n > ? ORDER BY n LIMIT ?", (after, CHUNK)):
                    rows.append(row)
                ended = len(rows) < CHUNK
            except sqlite3.DatabaseError:
                if not rows:
                    after += step  # inside a damaged stretch: step over it, further each time
                    step *= 2
                    continue
                ended = False
            step = 1
            if not rows:
                break
            after = int(rows[-1][0])
            inserts = [r for r in map(_as_insert, rows) if r is not None]
            try:
                store.transact(inserts, [])
            except sqlite3.OperationalError as exc:
                if not is_disk_full(exc):
                    raise
                log.warning("the disk is full: stopped recovering events from %s", damaged)
                break
            copied += len(inserts)
            if ended:
                break
        else:
            log.warning("recovering events from %s took too long; stopped after %d",
                        damaged, copied)
    if copied:
        log.warning("recovered %d events from the damaged outbox %s", copied, damaged)
    return copied
