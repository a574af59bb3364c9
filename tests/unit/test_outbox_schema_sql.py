"""The outbox's schema in plain SQL: the same tables and indexes, to the letter, as sqlite-utils
made them (old files and new ones alike), less the indexes retired since, and a new outbox
made without loading sqlite-utils or numpy."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import sqlite_utils

from agent.outbox.schema import migrate, retire_indexes


def _schema(conn: sqlite3.Connection) -> list[tuple[str, str, str | None]]:
    return sorted(conn.execute("SELECT type, name, sql FROM sqlite_master"))


def test_the_schema_is_what_sqlite_utils_made() -> None:
    ours = sqlite3.connect(":memory:", isolation_level=None)
    migrate(ours)
    theirs = sqlite3.connect(":memory:", isolation_level=None)
    # the first release's migration, as it was written with sqlite-utils
    theirs.execute("""CREATE TABLE events (
            n INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL,
            priority INTEGER NOT NULL,
            type TEXT NOT NULL,
            created REAL NOT NULL,
            size INTEGER NOT NULL,
            bootid TEXT NOT NULL,
            body TEXT NOT NULL
        )""")
    db = sqlite_utils.Database(theirs)
    db.table("events").create_index(["priority", "n"], index_name="events_by_priority")
    db.table("events").create_index(["created"], index_name="events_by_created")
    db.table("counters").create({"name": str, "value": int}, pk="name", not_null={"value"})
    try:
        assert _schema(ours) == _schema(theirs)
        retire_indexes(ours)  # what the writer does after migrating
        retire_indexes(theirs)
        assert _schema(ours) == _schema(theirs)
        indexes = [n for kind, n, _ in _schema(ours) if kind == "index"]
        assert "events_by_created" not in indexes and "events_by_priority" not in indexes
        assert ours.execute("SELECT name, value FROM counters ORDER BY name").fetchall() == [
            ("bytes", 0),
            ("events", 0),
        ]
    finally:
        ours.close()
        theirs.close()


def test_a_new_outbox_loads_neither_sqlite_utils_nor_numpy(tmp_path: Path) -> None:
    code = f"""
import sqlite3, sys
from agent.outbox.schema import migrate, retire_indexes
migrate(sqlite3.connect({str(tmp_path / "outbox.db")!r}, isolation_level=None))
print(sorted(m for m in ("sqlite_utils", "numpy") if m in sys.modules))
"""
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
