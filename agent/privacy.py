"""Privacy controls on the store's own data: consent per opted-in identifier and a retention
limit on every local table.

Consent arrives from upstream as signed "consent" documents ({"mode": "snapshot" or
"increment", "rows": [{"subject": "<app identifier>", "state": "granted" or "withdrawn"}]}).
An identifier whose consent is withdrawn is no longer reported: its presence events are
withheld (counted) — the device then only counts as anonymous footfall, like anyone who never
opted in. Retention: orders, appointments and KPI roll-ups older than [privacy]
retention_days are deleted by a daily sweep (the outbox has its own TTL; the anonymous
counting salts never leave memory).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from agent.localdb import immediate, open_db
from agent.storelink.docs import Doc, DocRefused

SCHEMA = """
CREATE TABLE IF NOT EXISTS consent (
    subject TEXT PRIMARY KEY,
    state TEXT NOT NULL,          -- granted, withdrawn
    since REAL NOT NULL
);
"""
STATES = ("granted", "withdrawn")


class Privacy:
    def __init__(self, path: Path) -> None:
        self._db = open_db(path, SCHEMA)
        self._lock = threading.Lock()
        self.withdrawn = self._load()
        self.withheld = 0

    def _load(self) -> set[str]:
        with self._lock:
            rows = self._db.execute("SELECT subject FROM consent WHERE state = 'withdrawn'")
            return {r[0] for r in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()

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
            rows.append((r["subject"], r["state"], time.time()))
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
        if data.get("kind") == "app" and str(data.get("id")) in self.withdrawn:
            self.withheld += 1
            return False
        return True

    def sweep(self, retention_days: float, now: float | None = None) -> dict[str, int]:
        """Delete what is older than the retention limit from every local table."""
        cutoff = (now or time.time()) - retention_days * 86400
        removed = {}
        with self._lock, immediate(self._db) as db:
            for table, column in (("orders", "updated"), ("appointments", "at"),
                                  ("kpi_hourly", "hour"), ("loyalty", "updated")):
                exists = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                    "AND name = ?", (table,)).fetchone()
                if exists:
                    removed[table] = db.execute(
                        f"DELETE FROM {table} WHERE {column} < ?", (cutoff,)).rowcount  # noqa: S608
        return removed
