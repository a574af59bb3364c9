"""Recovering what is still readable in an outbox file that was moved aside as damaged.

A damaged page takes the events on it; it must not take the rest of a backlog (an outage's
check-ins, waiting for the broker) with it. The events that still read back are copied into
the fresh outbox, oldest first, stepping over damaged stretches; the file aside stays as it is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
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


class _DiskFull(Exception):
    """The fresh outbox's disk filled up: recovering stops here."""


@dataclass
class _Copied:
    count: int = 0
    numbers: set[int] = field(default_factory=set)  # row numbers of the damaged file copied

    def copy(self, store: Target, rows: Sequence[tuple[Any, ...]]) -> None:
        inserts = [r for r in map(_as_insert, rows) if r is not None]
        try:
            store.transact(inserts, [])
        except sqlite3.OperationalError as exc:
            if not is_disk_full(exc):
                raise
            raise _DiskFull from exc
        self.count += len(inserts)
        self.numbers.update(int(r[0]) for r in rows)


def _walk(conn: sqlite3.Connection, store: Target, deadline: float, copied: _Copied) -> bool:
    """Copy the rows the table's b-tree still reaches, oldest first, stepping over damaged
    stretches; whether damage was met."""
    damaged = False
    after, step = -1, 1
    try:  # the last row number ever given: past it there is nothing to look for
        last = int(conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()[0])
    except (sqlite3.DatabaseError, TypeError, ValueError):
        last, damaged = 1 << 62, True
    while time.monotonic() < deadline and after < last:
        rows: list[tuple[Any, ...]] = []
        try:  # row by row: what was read before a damaged page is kept
            for row in conn.execute(
                    "SELECT n, id, priority, type, created, size, bootid, body FROM events"
                    " WHERE n > ? ORDER BY n LIMIT ?", (after, CHUNK)):
                rows.append(row)
            ended = len(rows) < CHUNK
        except sqlite3.DatabaseError:
            damaged = True
            if not rows:
                after += step  # inside a damaged stretch: step over it, further each time
                step *= 2
                continue
            ended = False
        step = 1
        if not rows:
            break
        after = int(rows[-1][0])
        copied.copy(store, rows)
        if ended:
            break
    return damaged


def _listed(conn: sqlite3.Connection, deadline: float) -> set[int]:
    """Row numbers the drain-order index still lists (a deleted row is in no index), read
    over its own damaged stretches."""
    listed: set[int] = set()
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'index'"
                        " AND name = 'events_by_priority'").fetchone() is None:
            return listed  # a file of keyed row numbers (schema.py) has no such index
    except sqlite3.DatabaseError:
        pass  # the schema page itself damaged: try the index as before
    for prio in range(10):
        after, step = -1, 1
        while time.monotonic() < deadline:
            try:
                got = [int(n) for (n,) in conn.execute(
                    "SELECT n FROM events INDEXED BY events_by_priority"
                    " WHERE priority = ? AND n > ? ORDER BY n LIMIT ?", (prio, after, CHUNK))]
            except sqlite3.DatabaseError:
                after += step
                step *= 2
                if after > (1 << 62):
                    break
                continue
            step = 1
            listed.update(got)
            if len(got) < CHUNK:
                break
            after = got[-1]
    return listed


def _scan_pages(damaged: Path, copied: set[int], listed: set[int],
                deadline: float) -> list[tuple[Any, ...]]:
    """The rows not copied yet read from the file's pages, by a child process
    (agent/outbox/pagescan.py says which and why), in row-number order."""
    try:
        done = subprocess.run(  # noqa: S603 -- our own interpreter and module, a path we made
            [sys.executable, "-m", "agent.outbox.pagescan", str(damaged)],
            input=json.dumps({"copied": sorted(copied), "listed": sorted(listed)}),
            capture_output=True, text=True, check=False,
            timeout=max(1.0, deadline - time.monotonic()))
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("reading the pages of %s for lost events failed: %s", damaged, exc)
        return []
    rows = []
    for line in done.stdout.splitlines():
        with contextlib.suppress(ValueError, TypeError):
            rows.append(tuple(json.loads(line)))
    return sorted(rows, key=lambda r: int(r[0]))


def salvage(store: Target, damaged: Path, budget_s: float = SALVAGE_BUDGET_S) -> int:
    """Copy the events still readable in `damaged` into `store`; how many were copied.

    First through SQLite, in row order; then, if damage was met, the rows the table's b-tree
    no longer reaches (a damaged interior page hides every leaf below it) are read from the
    pages themselves."""
    conn = _open(damaged)
    if conn is None:
        return 0
    deadline = time.monotonic() + budget_s
    copied = _Copied()
    with contextlib.closing(conn):
        try:
            if _walk(conn, store, deadline, copied) and time.monotonic() < deadline:
                listed = _listed(conn, deadline)
                conn.close()  # before the child reads the file: nothing of ours is open on it
                rows = _scan_pages(damaged, copied.numbers, listed, deadline)
                for k in range(0, len(rows), CHUNK):
                    copied.copy(store, rows[k:k + CHUNK])
            if time.monotonic() >= deadline:
                log.warning("recovering events from %s took too long; stopped after %d",
                            damaged, copied.count)
        except _DiskFull:
            log.warning("the disk is full: stopped recovering events from %s", damaged)
    if copied.count:
        log.warning("recovered %d events from the damaged outbox %s", copied.count, damaged)
    return copied.count
