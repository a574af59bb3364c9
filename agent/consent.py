"""Consent per opted-in identifier: the consent table group of the store database
(agent/storedb/ owns the file and its schema: consent, privacy_meta).

Consent arrives from upstream as signed "consent" documents ({"mode": "snapshot" or
"increment", "rows": [{"subject": "<app identifier>", "state": "granted" or "withdrawn"}]}).
Records are kept under a keyed hash of the identifier, never the identifier itself.
An identifier whose consent is withdrawn is no longer reported: its presence events are
withheld (counted) — the device then only counts as anonymous footfall, like anyone who never
opted in.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from pathlib import Path
from typing import Any

from agent.contracts.events import BLE_PRESENCE
from agent.localdb import retry_when_full
from agent.storedb import Repository, StoreDatabase, subject_forms
from agent.storelink.docs import Doc, DocRefused

STATES = ("granted", "withdrawn")
_HASHED = re.compile(r"[0-9a-f]{64}")


class Consent(Repository):
    """Consent records never hold an identifier: only its keyed hash (the key is this
    device's, made once), so the table can say "do not report this one" — even after the
    subject was erased — without naming anybody."""

    def __init__(self, store: Path | StoreDatabase) -> None:
        super().__init__(store)
        self._key = self._device_key()
        self._hash_plain_subjects()
        self.withdrawn = self._load()
        self.withheld = 0

    def _device_key(self) -> bytes:
        with self._store.writing() as db:
            row = db.execute("SELECT value FROM privacy_meta WHERE name = 'key'").fetchone()
            if row is not None:
                return bytes(row[0])
            key = os.urandom(32)
            db.execute("INSERT INTO privacy_meta VALUES ('key', ?)", (key,))
            return key

    def key_of(self, subject: str) -> str:
        return hmac.new(self._key, subject.encode(), hashlib.sha256).hexdigest()

    def _hash_plain_subjects(self) -> None:
        """Records written before identifiers were hashed are hashed in place (a data
        change that needs the device's key, so not a schema migration)."""
        with self._store.reading() as db:
            rows = db.execute("SELECT subject, state, since FROM consent").fetchall()
            plain = [r for r in rows if not _HASHED.fullmatch(r[0])]
            if not plain:
                return
            with self._store.erasing() as tx:
                for subject, state, since in plain:
                    tx.execute("DELETE FROM consent WHERE subject = ?", (subject,))
                    tx.execute("INSERT OR REPLACE INTO consent VALUES (?, ?, ?)",
                               (self.key_of(subject), state, since))

    def _load(self) -> set[str]:
        with self._store.reading() as db:
            rows = db.execute("SELECT subject FROM consent WHERE state = 'withdrawn'")
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
        with self._store.writing() as db:
            for key in keys:
                found = db.execute("SELECT 1 FROM consent WHERE subject = ?", (key,)).fetchone()
                had += 1 if found else 0
                if found or key == given:
                    db.execute("INSERT INTO consent VALUES (?, 'withdrawn', ?) ON CONFLICT"
                               "(subject) DO UPDATE SET state = 'withdrawn', "
                               "since = excluded.since", (key, time.time()))
        self.withdrawn = self._load()
        return had

    def erase_rows_of(self, subject: str) -> dict[str, int]:
        return {"consent_records": self.erase(subject)}

    @retry_when_full
    def retention_sweep(self, cutoff: float) -> dict[str, int]:
        """Grants recorded before `cutoff`: a granted consent is what anybody without a
        record has. A withdrawal stays, or the device would report that person again."""
        with self._store.writing() as db:
            n = db.execute("DELETE FROM consent WHERE since < ? AND state = 'granted'",
                           (cutoff,)).rowcount
        return {"consent": n}

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
        with self._store.writing() as db:
            if body["mode"] == "snapshot":
                db.execute("DELETE FROM consent")
            db.executemany("INSERT INTO consent VALUES (?, ?, ?) ON CONFLICT(subject) "
                           "DO UPDATE SET state = excluded.state, since = excluded.since", rows)
        self.withdrawn = self._load()

    def allows(self, event_type: str, data: Any) -> bool:
        """False for a presence event of an identifier whose consent is withdrawn."""
        if event_type != BLE_PRESENCE or not isinstance(data, dict):
            return True
        if data.get("kind") == "app" and self.withdrawn \
                and self.key_of(str(data.get("id"))) in self.withdrawn:
            self.withheld += 1
            return False
        return True
