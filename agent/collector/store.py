"""Where the collector keeps events: idempotent by event id, with what is needed to find gaps
and duplicates per device and boot (`source`, `bootid`, `seq`).

`sqlite:///path/to/events.db` or `postgresql://user@host:5432/db` — the same tables and the
same statements (ON CONFLICT works in both); only placeholders and transactions differ.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

MAX_SEQ: Final = 2**63 - 1  # BIGINT
# id, source, bootid, seq, type, time, body
Row = tuple[str, str, str, int, str, str, str]
TABLES = (
    """CREATE TABLE IF NOT EXISTS events (
        id TEXT PRIMARY KEY, source TEXT NOT NULL, bootid TEXT NOT NULL, seq BIGINT NOT NULL,
        type TEXT NOT NULL, time TEXT NOT NULL, body TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS events_boot ON events (source, bootid, seq)",
    """CREATE TABLE IF NOT EXISTS duplicates (source TEXT NOT NULL, bootid TEXT NOT NULL,
        n BIGINT NOT NULL, PRIMARY KEY (source, bootid))""",
)


def _row(event: Any) -> Row | None:
    """An event as stored, or None when it cannot be kept as the device sent it: its id,
    source, bootid, type and time texts, its seq a whole number (a null id stored as "None"
    would make the next such event a duplicate), nothing the database refuses (a NUL, a lone
    surrogate: one such message would stop the collector, redelivered for ever)."""
    if not isinstance(event, dict):
        return None
    texts = [t for t in (event.get(k) for k in ("id", "source", "bootid", "type", "time"))
             if isinstance(t, str) and "\0" not in t]
    seq = event.get("seq")
    if len(texts) != 5 or not texts[0] or type(seq) is not int or not 0 <= seq <= MAX_SEQ:
        return None
    try:
        body = json.dumps(event, separators=(",", ":"))
        "".join(texts).encode()  # a lone surrogate is no UTF-8
    except (ValueError, RecursionError):
        return None
    id_, source, bootid, type_, time = texts
    return (id_, source, bootid, seq, type_, time, body)


class EventStore:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.kind = parts.scheme
        if parts.scheme == "sqlite":
            if parts.path in ("", "/") or "\0" in parts.path:
                raise ValueError(f"--db {url!r}: give sqlite:///PATH/TO/FILE.db")
            path = Path(parts.path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db: Any = sqlite3.connect(str(path), check_same_thread=False,
                                                isolation_level=None)
                try:
                    self._db.execute("PRAGMA journal_mode=WAL")
                    self._db.execute("PRAGMA busy_timeout=5000")
                    for statement in TABLES:
                        self._db.execute(statement)
                except BaseException:
                    self._db.close()  # a file that is no database: not left to the GC
                    raise
            except (OSError, sqlite3.Error) as exc:
                detail = getattr(exc, "strerror", None) or str(exc)
                raise ValueError(f"--db {url!r}: cannot open {path} ({detail}); give a "
                                 "writable file path") from None
            self._mark = "?"
        elif parts.scheme in ("postgresql", "postgres"):
            import psycopg

            try:
                self._db = psycopg.connect(url, autocommit=True, connect_timeout=10)
            except psycopg.OperationalError as exc:
                detail = " ".join(str(exc).split())  # psycopg's message spans lines
                raise ValueError(f"--db {url!r}: cannot connect ({detail})") from None
            for statement in TABLES:
                self._db.execute(statement)
            self._mark = "%s"
        else:
            raise ValueError(f"--db: sqlite:///PATH or postgresql://USER@HOST/DB, not {url!r}")
        self._lock = threading.Lock()
        self.bad_messages = 0

    def _sql(self, text: str) -> str:
        return text.replace("?", self._mark)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        if self.kind == "sqlite":
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        else:
            with self._db.transaction():
                yield

    def close(self) -> None:
        self._db.close()

    def add_batch(self, payload: bytes) -> tuple[int, int]:
        """Store a CloudEvents batch; (new events, duplicates). A message that is not a batch
        is counted and kept out (the broker would only send it again)."""
        return self.add_batches([payload])

    def _parse(self, payload: bytes) -> list[Row]:
        """The readable events of a message. A message that is not JSON, or holds an event
        that cannot be kept as sent, is counted once (bad_messages); the events beside such
        an event are kept all the same (the device deleted them on the PUBACK)."""
        try:
            events = json.loads(payload)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            self.bad_messages += 1
            return []
        if isinstance(events, dict):
            events = [events]
        if not isinstance(events, list):
            self.bad_messages += 1
            return []
        rows = [row for row in map(_row, events) if row is not None]
        if len(rows) != len(events):
            self.bad_messages += 1
        return rows

    def add_batches(self, payloads: Sequence[bytes]) -> tuple[int, int]:
        """Store several messages' batches in one transaction; (new events, duplicates).
        On PostgreSQL one statement inserts them all: a round trip per message was what
        held a collector back, not the rows."""
        rows: list[Row] = []
        for payload in payloads:
            rows.extend(self._parse(payload))
        if not rows:
            return 0, 0
        with self._lock, self._transaction():
            if self.kind == "sqlite":
                kept: Counter[tuple[str, str]] = Counter()
                insert = ("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?) "
                          "ON CONFLICT (id) DO NOTHING")
                for row in rows:
                    if self._db.execute(insert, row).rowcount:
                        kept[(row[1], row[2])] += 1
            else:
                # the rows as one JSON parameter: psycopg's text arrays escape every element
                # through a regular expression (2.7x slower here, measured)
                cur = self._db.execute(
                    "INSERT INTO events SELECT r->>0, r->>1, r->>2, (r->>3)::bigint, r->>4, "
                    "r->>5, r->>6 FROM json_array_elements(%s::json) r "
                    "ON CONFLICT (id) DO NOTHING RETURNING source, bootid",
                    (json.dumps(rows, ensure_ascii=False),))
                kept = Counter((str(a), str(b)) for a, b in cur.fetchall())
            dupes = Counter((r[1], r[2]) for r in rows)
            dupes.subtract(kept)
            count_dupes = self._sql("INSERT INTO duplicates VALUES (?, ?, ?) ON CONFLICT "
                                    "(source, bootid) DO UPDATE SET n = duplicates.n + "
                                    "excluded.n")
            for (source, bootid), n in sorted(dupes.items()):
                if n > 0:
                    self._db.execute(count_dupes, (source, bootid, n))
        new = sum(kept.values())
        return new, len(rows) - new

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        return list(self._db.execute(self._sql(sql), args).fetchall())

    def report(self) -> list[dict[str, Any]]:
        """Per device and boot: events, seq range, the missing seq ranges, duplicates."""
        out = []
        with self._lock:
            boots = self._rows("SELECT source, bootid, count(*), min(seq), max(seq) FROM events "
                               "GROUP BY source, bootid ORDER BY source, bootid")
            for source, bootid, n, lo, hi in boots:
                seqs = [r[0] for r in self._rows("SELECT seq FROM events WHERE source = ? AND "
                                                 "bootid = ? ORDER BY seq", (source, bootid))]
                gaps, expect = [], 1
                for s in seqs:
                    if s > expect:
                        gaps.append([expect, s - 1])
                    expect = s + 1
                dup = self._rows("SELECT n FROM duplicates WHERE source = ? AND bootid = ?",
                                 (source, bootid))
                out.append({"source": source, "bootid": bootid, "events": int(n),
                            "first_seq": int(lo), "last_seq": int(hi), "gaps": gaps,
                            "duplicates": int(dup[0][0]) if dup else 0})
        return out

    def count(self, event_type: str | None = None) -> int:
        with self._lock:
            if event_type is None:
                return int(self._rows("SELECT count(*) FROM events")[0][0])
            return int(self._rows("SELECT count(*) FROM events WHERE type = ?",
                                  (event_type,))[0][0])

    def bodies(self, bootid: str, limit: int) -> list[str]:
        """The first `limit` events of a boot as stored (for re-sending in tests)."""
        with self._lock:
            return [r[0] for r in self._rows("SELECT body FROM events WHERE bootid = ? "
                                             "ORDER BY seq LIMIT ?", (bootid, limit))]
