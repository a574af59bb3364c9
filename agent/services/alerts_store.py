"""The staff alerts' table group of the store database (agent/storedb/, which owns the file
and its schema: migration step 2). Each state change is one conditional UPDATE in an IMMEDIATE
transaction, so two staff phones acknowledging at once cannot both win."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from agent.contracts.alerts import Alert, AlertState
from agent.localdb import retry_when_full
from agent.storedb import Repository, StoreDatabase

# Closed alerts kept whatever the retention limit: the "recent" part of a staff view's list
# and the day's response times need only the last ones; a kiosk pressed all day stays small.
KEEP_CLOSED: Final = 5_000

_COLUMNS: Final = ("id", "kind", "subject", "ref", "cause", "created", "state", "level",
                   "escalate_at", "acknowledged_by", "acknowledged_at", "closed_by",
                   "closed_at")
_SELECT: Final = f"SELECT {', '.join(_COLUMNS)} FROM staff_alerts"  # noqa: S608
_LIVE: Final = "state != 'closed'"


def _alert(row: sqlite3.Row | tuple[Any, ...]) -> Alert:
    d = dict(zip(_COLUMNS, row, strict=True))
    try:
        ref = json.loads(d["ref"])
    except ValueError:
        ref = {}
    d["ref"] = ref if isinstance(ref, dict) else {}
    return d  # type: ignore[return-value]  # the columns are the Alert's keys


class AlertStore(Repository):
    """Safe from any thread (the owner's lock)."""

    def __init__(self, store: Path | StoreDatabase) -> None:
        super().__init__(store)

    def get(self, alert_id: str) -> Alert | None:
        with self._store.reading() as db:
            row = db.execute(f"{_SELECT} WHERE id = ?", (alert_id,)).fetchone()
        return _alert(row) if row is not None else None

    def live_for(self, dedupe: str) -> Alert | None:
        """The alert not yet closed that stands for `dedupe`, if any."""
        with self._store.reading() as db:
            row = db.execute(f"{_SELECT} WHERE dedupe = ? AND {_LIVE}", (dedupe,)).fetchone()
        return _alert(row) if row is not None else None

    def live_count(self) -> int:
        with self._store.reading() as db:
            return int(db.execute("SELECT count(*) FROM staff_alerts WHERE state != 'closed'")
                       .fetchone()[0])

    @retry_when_full
    def add(self, alert: Alert, dedupe: str | None) -> tuple[Alert, bool]:
        """Keep a new alert; (it, True) — or (the live one for `dedupe`, False): the same
        thing is not raised twice while its alert is not closed."""
        with self._store.writing() as db:
            if dedupe is not None:
                row = db.execute(f"{_SELECT} WHERE dedupe = ? AND {_LIVE}",
                                 (dedupe,)).fetchone()
                if row is not None:
                    return _alert(row), False
            values = {**alert, "ref": json.dumps(alert["ref"], ensure_ascii=False)}
            db.execute(f"INSERT INTO staff_alerts ({', '.join(_COLUMNS)}, dedupe) "  # noqa: S608
                       f"VALUES ({', '.join('?' for _ in _COLUMNS)}, ?)",
                       (*(values[c] for c in _COLUMNS), dedupe))
        return alert, True

    @retry_when_full
    def acknowledge_alert(self, alert_id: str, by: str, at: float) -> bool:
        """Open -> acknowledged; False if it was not open."""
        with self._store.writing() as db:
            return db.execute(
                "UPDATE staff_alerts SET state = ?, acknowledged_by = ?, acknowledged_at = ?, "
                "escalate_at = NULL WHERE id = ? AND state = ?",
                (AlertState.ACKNOWLEDGED, by, at, alert_id, AlertState.OPEN)).rowcount == 1

    @retry_when_full
    def close_alert(self, alert_id: str, by: str, at: float) -> bool:
        """Open or acknowledged -> closed; False if it was closed already (or unknown)."""
        with self._store.writing() as db:
            return db.execute(
                f"UPDATE staff_alerts SET state = ?, closed_by = ?, closed_at = ?, "  # noqa: S608
                f"escalate_at = NULL WHERE id = ? AND {_LIVE}",
                (AlertState.CLOSED, by, at, alert_id)).rowcount == 1

    def due(self, now: float) -> list[Alert]:
        """Open alerts whose escalation time has come."""
        with self._store.reading() as db:
            rows = db.execute(f"{_SELECT} WHERE state = ? AND escalate_at <= ? "
                              "ORDER BY escalate_at LIMIT 100", (AlertState.OPEN, now)).fetchall()
        return [_alert(r) for r in rows]

    @retry_when_full
    def escalate(self, alert_id: str, level: int, escalate_at: float | None) -> bool:
        """The level raised, if it is still open (an ack in between wins)."""
        with self._store.writing() as db:
            return db.execute(
                "UPDATE staff_alerts SET level = ?, escalate_at = ? WHERE id = ? AND state = ?",
                (level, escalate_at, alert_id, AlertState.OPEN)).rowcount == 1

    def listing(self, limit: int) -> tuple[list[Alert], int]:
        """The live alerts oldest first, then the most recently closed; at most `limit` in
        all; and how many live ones there are."""
        with self._store.reading() as db:
            live_total = int(db.execute("SELECT count(*) FROM staff_alerts WHERE state != 'closed'")
                             .fetchone()[0])
            live = db.execute(f"{_SELECT} WHERE {_LIVE} ORDER BY created, id LIMIT ?",
                              (limit,)).fetchall()
            closed = db.execute(f"{_SELECT} WHERE state = ? ORDER BY closed_at DESC, id DESC "
                                "LIMIT ?", (AlertState.CLOSED, limit - len(live))).fetchall()
        return [_alert(r) for r in (*live, *closed)], live_total

    def closed_between(self, start: float, end: float) -> Iterable[Alert]:
        with self._store.reading() as db:
            rows = db.execute(f"{_SELECT} WHERE state = ? AND closed_at >= ? AND closed_at < ?",
                              (AlertState.CLOSED, start, end)).fetchall()
        return [_alert(r) for r in rows]

    @retry_when_full
    def retention_sweep(self, cutoff: float) -> dict[str, int]:
        """Closed alerts closed before `cutoff`, and all but the last KEEP_CLOSED closed ones;
        a live alert stays however old (someone still has to act on it)."""
        with self._store.writing() as db:
            n = db.execute("DELETE FROM staff_alerts WHERE state = ? AND closed_at < ?",
                           (AlertState.CLOSED, cutoff)).rowcount
            n += db.execute(
                "DELETE FROM staff_alerts WHERE state = ? AND id NOT IN (SELECT id FROM "
                "staff_alerts WHERE state = ? ORDER BY closed_at DESC LIMIT ?)",
                (AlertState.CLOSED, AlertState.CLOSED, KEEP_CLOSED)).rowcount
        return {"staff_alerts": n}

    @retry_when_full
    def erase_rows_of(self, subject: str) -> dict[str, int]:
        """Alerts about an order or appointment (by id or code): their text may name the
        shopper."""
        with self._store.erasing() as db:
            n = db.execute(
                "DELETE FROM staff_alerts WHERE json_extract(ref, '$.order') = ? OR "
                "json_extract(ref, '$.appointment') = ? OR json_extract(ref, '$.code') = ?",
                (subject, subject, subject.upper())).rowcount
        return {"staff_alerts": n}
