"""What the store link has accepted, kept in SQLite (next to the orders in the store's
database): the last applied document per kind and scope, the highest version applied per
kind and scope, and the keys trusted after a rotation. After a reboot, or with the broker
gone, the store works from these.

The version is a row of its own: the retention sweep and erasure remove document bodies
(names, codes), and with the body gone an older, still valid document must still be refused
as older — replay protection cannot be something privacy deletes.

The link cache's table group of the store database (agent/storedb/ owns the file and its
schema: link_docs, link_versions, link_keys)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from agent.localdb import retry_when_full
from agent.storedb import Repository, subject_forms
from agent.storelink.docs import unverified_fields

# kinds whose body is not kept: a command is done once it is answered, and its arguments
# may name a person (erase-subject); only its version is kept, against replays
VERSION_ONLY = frozenset({"cmd"})


# the kinds of cached document that hold people (names, codes): what the retention limit
# covers; the device's keys, config and content stay whatever their age
# (personal offers name app identifiers, as consent does)
PERSONAL_KINDS = ("orders", "appointments", "consent", "loyalty", "offers")


class LinkCache(Repository):
    def applied(self) -> dict[tuple[str, str], int]:
        with self._store.reading() as db:
            rows = db.execute("SELECT kind, scope, version FROM link_versions").fetchall()
        return {(k, s): int(v) for k, s, v in rows}

    def document(self, kind: str, scope: str) -> bytes | None:
        with self._store.reading() as db:
            row = db.execute("SELECT raw FROM link_docs WHERE kind = ? AND scope = ?",
                             (kind, scope)).fetchone()
        return bytes(row[0]) if row else None

    @retry_when_full
    def store(self, kind: str, scope: str, version: int, raw: bytes) -> None:
        with self._store.writing() as db:
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
        # searched without the owner's lock (up to 2 MiB a document to parse; the other
        # parts of the agent use the connection meanwhile); a document replaced in the
        # meantime is not blanked: it arrived after the erasure was asked for
        with self._store.reading() as db:
            rows = db.execute("SELECT kind, scope, raw FROM link_docs "
                              "WHERE length(raw) > 0").fetchall()
        hits = [(k, s, raw) for k, s, raw in rows if _names(bytes(raw), forms)]
        if not hits:
            return 0
        with self._store.erasing() as db:
            return sum(db.execute("UPDATE link_docs SET raw = x'' WHERE kind = ? AND "
                                  "scope = ? AND raw = ?", hit).rowcount for hit in hits)

    def erase_rows_of(self, subject: str) -> dict[str, int]:
        return {"cached_documents": self.erase_subject(subject_forms(subject))}

    @retry_when_full
    def retention_sweep(self, cutoff: float) -> dict[str, int]:
        """Cached documents with people in them applied before `cutoff` (their versions
        stay: replay protection)."""
        marks = ", ".join("?" for _ in PERSONAL_KINDS)
        with self._store.writing() as db:
            n = db.execute(f"DELETE FROM link_docs WHERE applied_at < ? "  # noqa: S608
                           f"AND kind IN ({marks})", (cutoff, *PERSONAL_KINDS)).rowcount
        return {"link_docs": n}

    def keys(self) -> dict[str, str]:
        with self._store.reading() as db:
            rows = db.execute("SELECT key_id, public_key FROM link_keys").fetchall()
        return dict(rows)

    @retry_when_full
    def replace_keys(self, keys: dict[str, str]) -> None:
        with self._store.writing() as db:
            db.execute("DELETE FROM link_keys")
            db.executemany("INSERT INTO link_keys VALUES (?, ?, ?)",
                           [(k, v, time.time()) for k, v in keys.items()])


def _names(raw: bytes, forms: set[str]) -> bool:
    doc = unverified_fields(raw)  # a JWS's payload is base64url: read it, not its bytes
    if doc is None:
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
