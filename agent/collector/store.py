"""Where the collector keeps events: idempotent by event id, with what is needed to find gaps
and duplicates per device and boot (`source`, `bootid`, `seq`).

SQLite now (`sqlite:///path/to/events.db`); the same table on PostgreSQL is next.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    bootid TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    time TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_boot ON events (source, bootid, seq);
CREATE TABLE IF NOT EXISTS duplicates (source TEXT, bootid TEXT, n INTEGER,
                                       PRIMARY KEY (source, bootid));
"""


class EventStore:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "sqlite":
            raise ValueError(f"--db: sqlite:///PATH (PostgreSQL comes next), not {url!r}")
        path = Path(parts.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self.bad_messages = 0

    def close(self) -> None:
        self._db.close()

    def add_batch(self, payload: bytes) -> tuple[int, int]:
        """Store a CloudEvents batch; (new events, duplicates). A batch that is not one is
        counted and kept out (the broker would only send it again)."""
        try:
            events = json.loads(payload)
            if isinstance(events, dict):
                events = [events]
            rows = [(e["id"], e["source"], e["bootid"], int(e["seq"]), e["type"], e["time"],
                     json.dumps(e, separators=(",", ":"))) for e in events]
        except (ValueError, KeyError, TypeError):
            self.bad_messages += 1
            return 0, 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            new = 0
            dupes: dict[tuple[str, str], int] = {}
            for row in rows:
                if self._db.execute("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
                                    row).rowcount:
                    new += 1
                else:
                    key = (row[1], row[2])
                    dupes[key] = dupes.get(key, 0) + 1
            for (source, bootid), n in dupes.items():
                self._db.execute("INSERT INTO duplicates VALUES (?, ?, ?) ON CONFLICT(source, "
                                 "bootid) DO UPDATE SET n = n + excluded.n", (source, bootid, n))
            self._db.execute("COMMIT")
        return new, sum(dupes.values())

    def report(self) -> list[dict[str, Any]]:
        """Per device and boot: events, seq range, the missing seq ranges, duplicates."""
        with self._lock:
            boots = self._db.execute(
                "SELECT source, bootid, count(*), min(seq), max(seq) FROM events "
                "GROUP BY source, bootid ORDER BY source, min(rowid)").fetchall()
            out = []
            for source, bootid, n, lo, hi in boots:
                seqs = [r[0] for r in self._db.execute(
                    "SELECT seq FROM events WHERE source = ? AND bootid = ? ORDER BY seq",
                    (source, bootid))]
                gaps, expect = [], 1
                for s in seqs:
                    if s > expect:
                        gaps.append([expect, s - 1])
                    expect = s + 1
                dup = self._db.execute("SELECT n FROM duplicates WHERE source = ? AND "
                                       "bootid = ?", (source, bootid)).fetchone()
                out.append({"source": source, "bootid": bootid, "events": n, "first_seq": lo,
                            "last_seq": hi, "gaps": gaps, "duplicates": dup[0] if dup else 0})
        return out

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM events").fetchone()[0])
