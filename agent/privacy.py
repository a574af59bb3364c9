"""Privacy controls on the store's own data: consent per opted-in identifier and a retention
limit on every local table.

Consent arrives from upstream as signed "consent" documents ({"mode": "snapshot" or
"increment", "rows": [{"subject": "<app identifier>", "state": "granted" or "withdrawn"}]}).
Records are kept under a keyed hash of the identifier, never the identifier itself.
An identifier whose consent is withdrawn is no longer reported: its presence events are
withheld (counted) — the device then only counts as anonymous footfall, like anyone who never
opted in. Retention: orders, appointments and KPI roll-ups older than [privacy]
retention_days are deleted by a daily sweep (the outbox has its own TTL; the anonymous
counting salts never leave memory).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
import time
import unicodedata
from pathlib import Path
from typing import Any

from agent.localdb import immediate, open_db, retry_when_full
from agent.storelink.docs import Doc, DocRefused

SCHEMA = """
CREATE TABLE IF NOT EXISTS consent (
    subject TEXT PRIMARY KEY,     -- HMAC-SHA256 of the identifier under the device's key
    state TEXT NOT NULL,          -- granted, withdrawn (erased subjects stay withdrawn)
    since REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS privacy_meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""
STATES = ("granted", "withdrawn")


def subject_forms(subject: str) -> set[str]:
    """A data subject as it may have been written: as given and in both Unicode normal forms
    ("Zoë" typed on one system is one code point, on another two). The same one string for
    an ASCII identifier."""
    return {subject, unicodedata.normalize("NFC", subject),
            unicodedata.normalize("NFD", subject)}
_HASHED = re.compile(r"[0-9a-f]{64}")


class Privacy:
    """Consent records never hold an identifier: only its keyed hash (the key is this
    device's, made once), so the table can say "do not report this one" — even after the
    subject was erased — without naming anybody."""

    def __init__(self, path: Path) -> None:
        self._db = open_db(path, SCHEMA)
        self._lock = threading.Lock()
        self._key = self._device_key()
        self._migrate_plain_subjects()
        self.withdrawn = self._load()
        self.withheld = 0

    def _device_key(self) -> bytes:
        with self._lock, immediate(self._db) as db:
            row = db.execute("SELECT value FROM privacy_meta WHERE name = 'key'").fetchone()
            if row is not None:
                return bytes(row[0])
            key = os.urandom(32)
            db.execute("INSERT INTO privacy_meta VALUES ('key', ?)", (key,))
            return key

    def key_of(self, subject: str) -> str:
        return hmac.new(self._key, subject.encode(), hashlib.sha256).hexdigest()

    def _migrate_plain_subjects(self) -> None:
        """Records written before identifiers were hashed are hashed in place."""
        with self._lock:
            rows = self._db.execute("SELECT subject, state, since FROM consent").fetchall()
            plain = [r for r in rows if not _HASHED.fullmatch(r[0])]
            if not plain:
                return
            self._db.execute("PRAGMA secure_delete = ON")
            with immediate(self._db) as db:
                for subject, state, since in plain:
                    db.execute("DELETE FROM consent WHERE subject = ?", (subject,))
                    db.execute("INSERT OR REPLACE INTO consent VALUES (?, ?, ?)",
                               (self.key_of(subject), state, since))
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _load(self) -> set[str]:
        with self._lock:
            rows = self._db.execute("SELECT subject FROM consent WHERE state = 'withdrawn'")
            return {r[0] for r in rows}

    @retry_when_full
    def erase(self, subject: str) -> int:
        """Forget a subject: its consent record becomes an anonymous "withdrawn" (so it is
        not reported again unless upstream grants consent anew) — the record of the subject
        as given, and of its other Unicode normal form if there is one. Returns how many
        records it had."""
        keys = [self.key_of(f) for f in sorted(subject_forms(subject))]
        given = self.key_of(subject)
        had = 0
        with self._lock, immediate(self._db) as db:
            for key in keys:
                found = db.execute("SELECT 1 FROM consent WHERE subject = ?", (key,)).fetchone()
                had += 1 if found else 0
                if found or key == given:
                    db.execute("INSERT INTO consent VALUES (?, 'withdrawn', ?) ON CONFLICT"
                               "(subject) DO UPDATE SET state = 'withdrawn', "
                               "since = excluded.since", (key, time.time()))
        self.withdrawn = self._load()
        return had

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @retry_when_full
    def apply_consent(self, doc: Doc) -> None:
        body = doc.body
        if not isinstance(body, dict) or body.get("mode") not in ("snapshot", "increment") \
                or not isinstance(body.get("rows"), list):
            raise DocRefused("malformed", 'a consent document needs {"mode": ..., "rows": '
                                          '[{"subject": ..., "state": "granted|withdrawn"}]}')
        rows = []
        for i, r in enumerate(body["rows"]):
            if not isinstance(r, dict) or not isinstance(r.get("subject"), str) \
                    or not r["subject"] or r.get("state") not in STATES:
                raise DocRefused("malformed", f"row {i + 1}: needs a subject and a state of "
                                              "granted or withdrawn")
            rows.append((self.key_of(r["subject"]), r["state"], time.time()))
        with self._lock, immediate(self._db) as db:
            if body["mode"] == "snapshot":
                db.execute("DELETE FROM consent")
            db.executemany("INSERT INTO consent VALUES (?, ?, ?) ON CONFLICT(subject) "
                           "DO UPDATE SET state = excluded.state, since = excluded.since", rows)
        self.withdrawn = self._load()

    def allows(self, event_type: str, data: Any) -> bool:
        """False for a presence event of an identifier whose consent is withdrawn."""
        if event_type != "o2o.ble.presence" or not isinstance(data, dict):
            return True
        if data.get("kind") == "app" and self.withdrawn \
                and self.key_of(str(data.get("id"))) in self.withdrawn:
            self.withheld += 1
            return False
        return True

    @retry_when_full
    def sweep(self, retention_days: float, now: float | None = None) -> dict[str, int]:
        """Delete what is older than the retention limit from every local table."""
        cutoff = (now or time.time()) - retention_days * 86400
        removed = {}
        with self._lock, immediate(self._db) as db:
            for table, column, extra in (
                    ("orders", "updated", ""), ("appointments", "at", ""),
                    ("kpi_hourly", "hour", ""), ("loyalty", "updated", ""),
                    # a granted consent is what anybody without a record has; a withdrawal
                    # stays, or the device would report that person again
                    ("consent", "since", " AND state = 'granted'"),
                    # cached upstream documents with people in them (names, codes); the
                    # device's keys, config and content stay whatever their age
                    ("link_docs", "applied_at",
                     " AND kind IN ('orders', 'appointments', 'consent', 'loyalty')")):
                exists = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                    "AND name = ?", (table,)).fetchone()
                if exists:
                    removed[table] = db.execute(
                        f"DELETE FROM {table} WHERE {column} < ?{extra}",  # noqa: S608
                        (cutoff,)).rowcount
        return removed
