"""Read side of the outbox: drain cursor for the uplink, statistics, export.

WAL lets these reads run beside the writer without blocking it. Every connection here is
read-only (mode=ro, no pragma that writes): `outbox stats` and `export` work on a full disk
and beside a running agent. Damage met by a read is reported to the writer of this process,
which moves the file aside, and raised as one AgentError(OUTBOX_CORRUPT).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, TextIO, TypeVar
from urllib.parse import quote

from agent.errors import AgentError, Reason
from agent.outbox.dbfile import (
    BUSY_TIMEOUT_MS,
    inode_of,
    is_corruption,
    is_disk_full,
    report_corruption,
)
from agent.outbox.schema import KEY_SHIFT, MAX_PRIORITY, firsts, key_range
from agent.outbox.store import Row

Cursor = tuple[int, int]  # (priority, n) of the last row handed out
T = TypeVar("T")
_CANTOPEN: Final = 14  # SQLITE_CANTOPEN: no right to create the -shm beside the file


def connect_readonly(path: Path, *, immutable_ok: bool = False) -> sqlite3.Connection:
    """A connection that never writes the outbox.

    A WAL database read even read-only needs its -shm (the WAL index); a running agent keeps
    one, but after a clean stop there is none and making it needs room on the disk (a full
    one: SQLITE_IOERR_SHMSIZE) or the right to write beside the file. With no -shm there, no
    process has the file open in WAL mode, so — if `immutable_ok` — the file alone is read as
    it is (immutable: no locks, no -shm)."""
    shm_there = Path(f"{path}-shm").exists()
    uri = f"file:{quote(str(path))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the WAL index
        return conn
    except BaseException as exc:
        conn.close()  # on every path (damage too): Python 3.13 warns of one left to the GC
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if (not isinstance(exc, sqlite3.OperationalError) or not immutable_ok or shm_there
                or not (is_disk_full(exc) or code == _CANTOPEN)):
            raise
    conn = sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None,
                           check_same_thread=False)
    return conn


class OutboxReader:
    def __init__(self, path: Path, *, immutable_ok: bool = False) -> None:
        """Connects on first use: the agent starts even when its disk is too full for that."""
        self.path = path
        self.immutable_ok = immutable_ok
        self._conn: sqlite3.Connection | None = None
        self._inode = -1

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            inode = inode_of(self.path)
            self._conn = self._guard(
                lambda: connect_readonly(self.path, immutable_ok=self.immutable_ok))
            self._inode = inode
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def _guard(self, read: Callable[[], T]) -> T:
        try:
            return read()
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise
            why = str(exc)
        inode = self._inode if self._conn is not None else inode_of(self.path)
        self.close()
        told = report_corruption(self.path, inode, why)
        then = ("the agent is moving it aside and starting a new one" if told else
                "the agent moves it aside and starts a new one when it (re)starts")
        raise AgentError(Reason.OUTBOX_CORRUPT, f"the outbox {self.path} is damaged ({why}); "
                                                f"{then}")

    def fetch(self, after: Cursor | None, limit: int) -> list[Row]:
        return self._guard(lambda: self._fetch(after, limit))

    def _fetch(self, after: Cursor | None, limit: int) -> list[Row]:
        """Rows in drain order (priority high to low, then oldest first) after `after`.

        The row numbers are that order (agent/outbox/schema.py): one range of the table per
        priority level, no index and no sort."""
        conn = self.conn
        if after is None:
            top = conn.execute("SELECT max(n) FROM events").fetchone()[0]
            prio = None if top is None else min(top >> KEY_SHIFT, MAX_PRIORITY)
            last_n = -1
        else:
            # the range the cursor's row is in: a row numbered the old way (a file no writer
            # has opened since the update) may be in another priority's
            last_n = after[1]
            prio = min(max(last_n, 0) >> KEY_SHIFT, MAX_PRIORITY)
        rows: list[Row] = []
        while prio is not None and len(rows) < limit:
            lo, hi = key_range(prio)
            rows.extend(Row(*r) for r in conn.execute(
                "SELECT n, priority, created, bootid, body FROM events"
                " WHERE n > ? AND n <= ? ORDER BY n ASC LIMIT ?",
                (max(last_n, lo - 1), hi, limit - len(rows))))
            if len(rows) < limit:
                below = conn.execute("SELECT max(n) FROM events WHERE n < ?",
                                     (lo,)).fetchone()[0]
                prio = None if below is None else below >> KEY_SHIFT
                last_n = -1
        return rows

    def stats(self, now: float | None = None, detail: bool = False) -> dict[str, Any]:
        return self._guard(lambda: self._stats(now, detail))

    def _stats(self, now: float | None, detail: bool) -> dict[str, Any]:
        """Depth, bytes, age and drops; cheap enough for every status call.
        `detail` adds the depth per priority, which counts the whole backlog."""
        now = time.time() if now is None else now
        counters = dict(self.conn.execute("SELECT name, value FROM counters").fetchall())
        # the first committed of those waiting: each priority's first (row order, no index)
        oldest = min((created for _, _, created in firsts(self.conn)), default=None)
        by_priority: dict[int, int] = {}
        if detail:
            by_priority = dict(self.conn.execute(
                "SELECT priority, count(*) FROM events GROUP BY priority").fetchall())
        page_size = self.conn.execute("PRAGMA page_size").fetchone()[0]
        pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
        free = self.conn.execute("PRAGMA freelist_count").fetchone()[0]
        return {
            "path": str(self.path),
            "depth": int(counters.get("events", 0)),
            "bytes": int(counters.get("bytes", 0)),
            "file_bytes": page_size * pages,
            "free_bytes": page_size * free,
            "oldest_age_s": None if oldest is None else round(max(0.0, now - oldest), 3),
            **({"by_priority": {str(k): v for k, v in sorted(by_priority.items(), reverse=True)}}
               if detail else {}),
            "dropped": {
                k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("dropped:")
            },
        }

    def iter_events(self) -> Iterator[dict[str, Any]]:
        for body in self._bodies():
            yield json.loads(body)

    def _bodies(self) -> Iterator[str]:
        """Every body in drain order, read in chunks (each chunk guarded against damage)."""
        after: Cursor | None = None
        while True:
            rows = self.fetch(after, 2000)
            if not rows:
                return
            after = (rows[-1].priority, rows[-1].n)
            for r in rows:
                yield r.body

    def export_jsonl(self, out: TextIO) -> int:
        """Every buffered event as one JSON line, in drain order (for support and audits)."""
        count = 0
        for body in self._bodies():
            out.write(body + "\n")
            count += 1
        return count


def open_reader(path: Path) -> OutboxReader:
    """A reader for the CLI: read-only, with or without the agent running, full disk or not."""
    if not path.exists():
        raise FileNotFoundError(f"no outbox at {path} (has the agent run with this config?)")
    reader = OutboxReader(path, immutable_ok=True)
    try:
        reader.conn  # noqa: B018 -- connect now: a file that cannot be read is said here
    except sqlite3.DatabaseError as exc:
        raise FileNotFoundError(f"cannot read the outbox {path}: {exc}") from exc
    return reader
