"""What the store link has accepted, kept in SQLite (next to the orders in the store's
database): the last applied document per kind and scope, the highest version applied per
kind and scope, and the keys trusted after a rotation. After a reboot, or with the broker
gone, the store works from these.

The version is a row of its own: the retention sweep and erasure remove document bodies
(names, codes), and with the body gone an older, still valid document must still be refused
as older — replay protection cannot be something privacy deletes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
CREATE TABLE IF NOT EXISTS link_versions (
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    version INTEGER NOT NULL,     -- the highest applied; never swept (replay protection)
    PRIMARY KEY (kind, scope)
);
CREATE TABLE IF NOT EXISTS link_keys (
    key_id TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,     -- hex
    trusted_since REAL NOT NULL
);
"""
# kinds whose body is not kept: a command is done once it is answered, and its arguments
# may name a person (erase-subject); only its version is kept, against replays
VERSION_ONLY = frozenset({"cmd"})


class LinkCache:
    def __init__(self, path: Path) -> None:
        self._db = open_db(path, SCHEMA)
        self._lock = threading.Lock()
        self._versions_from_documents()

    def _versions_from_documents(self) -> None:
        """A database from before link_versions: its documents' versions are the start."""
        missing = self._db.execute(
            "SELECT 1 FROM link_docs WHERE (kind, scope) NOT IN "
            "(SELECT kind, scope FROM link_versions) LIMIT 1").fetchone()
        if missing:
            with immediate(self._db) as db:
                db.execute("INSERT OR IGNORE INTO link_versions "
                           "SELECT kind, scope, version FROM link_docs")

    def close(self) -> None:
        self._db.close()

    def applied(self) -> dict[tuple[str, str], int]:
        with self._lock:
            rows = self._db.execute("SELECT kind, scope, version FROM link_versions").fetchall()
        return {(k, s): int(v) for k, s, v in rows}

    def document(self, kind: str, scope: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT raw FROM link_docs WHERE kind = ? AND scope = ?",
                                   (kind, scope)).fetchone()
        return bytes(row[0]) if row else None

    @retry_when_full
    def store(self, kind: str, scope: str, version: int, raw: bytes) -> None:
        with self._lock, immediate(self._db) as db:
            db.execute(
                "INSERT INTO link_versions VALUES (?, ?, ?) ON CONFLICT(kind, scope) DO "
                "UPDATE SET version = max(version, excluded.version)", (kind, scope, version))
            if kind in VERSION_ONLY:
                return
            db.execute(
                "INSERT INTO link_docs VALUES (?, ?, ?, ?, ?) ON CONFLICT(kind, scope) DO "
                "UPDATE SET version = excluded.version, raw = excluded.raw, "
                "applied_at = excluded.applied_at", (kind, scope, version, raw, time.time()))

    @retry_when_full
    def erase_subject(self, forms: set[str]) -> int:
        """Blank the cached documents that hold any of `forms` (one subject as it may be
        written) as a JSON string; how many. Searched in the parsed document, not its
        bytes: upstream may write "Zoë" as it is or as "Zo\\u00eb"."""
        with self._lock:
            rows = self._db.execute("SELECT kind, scope, raw FROM link_docs "
                                    "WHERE length(raw) > 0").fetchall()
            hits = [(k, s) for k, s, raw in rows if _names(bytes(raw), forms)]
            if not hits:
                return 0
            self._db.execute("PRAGMA secure_delete = ON")
            with immediate(self._db) as db:
                db.executemany("UPDATE link_docs SET raw = x'' WHERE kind = ? AND scope = ?",
                               hits)
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(hits)

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


def _names(raw: bytes, forms: set[str]) -> bool:
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        # not a document we could read back: search its bytes as every form is written
        return any(f.encode() in raw or json.dumps(f).encode() in raw for f in forms)
    return any(s in forms for s in _strings(doc))


def _strings(value: Any) -> Iterator[str]:
    """Every string in a parsed JSON value, keys included (iteratively: no recursion
    limit for a deep one)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict):
            yield from (k for k in v if isinstance(k, str))
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
