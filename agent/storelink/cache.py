"""What the store link has accepted, kept in SQLite (next to the orders in the store's
database): the last applied document per kind and scope, and the keys trusted after a
rotation. After a reboot, or with the broker gone, the store works from these."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from agent.localdb import immediate, open_db, retry_when_full

SCHEMA = """
CREATE TABLE IF NOT EXISTS link_docs (
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,          -- "device" or "all"
    version INTEGER NOT NULL,
    raw BLOB NOT NULL,            -- the signed document as received
    applied_at REAL NOT NULL,
    PRIMARY KEY (kind, scope)
);
CREATE TABLE IF NOT EXISTS link_keys (
    key_id TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,     -- hex
    trusted_since REAL NOT NULL
);
"""


class LinkCache:
    def __init__(self, path: Path) -> None:
        self._db = open_db(path, SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def applied(self) -> dict[tuple[str, str], int]:
        with self._lock:
            rows = self._db.execute("SELECT kind, scope, version FROM link_docs").fetchall()
        return {(k, s): int(v) for k, s, v in rows}

    def document(self, kind: str, scope: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT raw FROM link_docs WHERE kind = ? AND scope = ?",
                                   (kind, scope)).fetchone()
        return bytes(row[0]) if row else None

    @retry_when_full
    def store(self, kind: str, scope: str, version: int, raw: bytes) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO link_docs VALUES (?, ?, ?, ?, ?) ON CONFLICT(kind, scope) DO "
                "UPDATE SET version = excluded.version, raw = excluded.raw, "
                "applied_at = excluded.applied_at", (kind, scope, version, raw, time.time()))

    def keys(self) -> dict[str, str]:
        with self._lock:
            rows = self._db.execute("SELECT key_id, public_key FROM link_keys").fetchall()
        return dict(rows)

    @retry_when_full
    def replace_keys(self, keys: dict[str, str]) -> None:
        with self._lock, immediate(self._db) as db:
            db.execute("DELETE FROM link_keys")
            db.executemany("INSERT INTO link_keys VALUES (?, ?, ?)",
                           [(k, v, time.time()) for k, v in keys.items()])
