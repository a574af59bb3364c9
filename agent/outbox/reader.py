"""Read side of the outbox: drain cursor for the uplink, statistics, export.

WAL lets these reads run beside the writer without blocking it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from agent.outbox.store import Row, connect

Cursor = tuple[int, int]  # (priority, n) of the last row handed out


class OutboxReader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = connect(path)

    def close(self) -> None:
        self.conn.close()

    def fetch(self, after: Cursor | None, limit: int) -> list[Row]:
        """Rows in drain order (priority high to low, then oldest first) after `after`.

        One index range scan per priority level: a single query ordered by (priority DESC,
        n ASC) over a range of priorities makes SQLite sort the whole backlog."""
        conn = self.conn
        if after is None:
            prio: int | None = conn.execute("SELECT max(priority) FROM events").fetchone()[0]
            last_n = -1
        else:
            prio, last_n = after
        rows: list[Row] = []
        while prio is not None and len(rows) < limit:
            rows.extend(Row(*r) for r in conn.execute(
                "SELECT n, priority, created, bootid, body FROM events"
                " WHERE priority = ? AND n > ? ORDER BY n ASC LIMIT ?",
                (prio, last_n, limit - len(rows))))
            if len(rows) < limit:
                prio = conn.execute(
                    "SELECT max(priority) FROM events WHERE priority < ?", (prio,)
                ).fetchone()[0]
                last_n = -1
        return rows

    def stats(self, now: float | None = None, detail: bool = False) -> dict[str, Any]:
        """Depth, bytes, age and drops; cheap enough for every status call.
        `detail` adds the depth per priority, which counts the whole backlog."""
        now = time.time() if now is None else now
        counters = dict(self.conn.execute("SELECT name, value FROM counters").fetchall())
        oldest = self.conn.execute("SELECT min(created) FROM events").fetchone()[0]
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
        for (body,) in self.conn.execute(
            "SELECT body FROM events ORDER BY priority DESC, n ASC"
        ):
            yield json.loads(body)

    def export_jsonl(self, out: TextIO) -> int:
        """Every buffered event as one JSON line, in drain order (for support and audits)."""
        import sqlite_utils  # only the CLI exports; the daemon never pays for the import

        count = 0
        db = sqlite_utils.Database(self.conn)
        for row in db.query("SELECT body FROM events ORDER BY priority DESC, n ASC"):
            out.write(row["body"] + "\n")
            count += 1
        return count


def open_reader(path: Path) -> OutboxReader:
    if not path.exists():
        raise FileNotFoundError(f"no outbox at {path} (has the agent run with this config?)")
    try:
        return OutboxReader(path)
    except sqlite3.DatabaseError as exc:
        raise FileNotFoundError(f"cannot read the outbox {path}: {exc}") from exc
