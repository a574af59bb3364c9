"""The store's check-in data: orders to pick up, appointments, loyalty cards — the check-in
table group of the store database (agent/storedb/, which owns the file and its schema).

A separate SQLite file from the outbox (`[kiosk] store_db`): it is reference data that
upstream sync or `o2o-edge orders import` replaces, not events. Names are first names only —
what the kiosk may show.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, Final

from agent.errors import AgentError, Reason
from agent.localdb import retry_when_full
from agent.storedb import Repository, StoreDatabase

# The staff queue's rows in one answer: a reply line stays far under the kiosk's 1 MiB line
# (a row is ~230 bytes at most, so QUEUE_MAX rows are ~230 KB) however many wait.
QUEUE_DEFAULT: Final = 200
QUEUE_MAX: Final = 1000
ORDER_STATUSES = ("preparing", "ready", "collected", "cancelled")
COLUMNS: Final = {"orders": ("order_id", "code", "first_name", "status", "eta_min", "store"),
                  "appointments": ("appt_id", "code", "first_name", "at", "service"),
                  "loyalty": ("card", "first_name", "points")}
# what a new row gets for a column a partial row (an increment) does not carry
DEFAULTS: Final[dict[str, Any]] = {"code": None, "first_name": "", "status": "preparing",
                                   "eta_min": 3, "store": "", "service": "", "points": 0}


class IncompleteRow(AgentError):
    """A partial row for a row the table does not have, lacking what a new row needs (the
    store link refuses the whole document as malformed)."""

    def __init__(self, message: str) -> None:
        super().__init__(Reason.DOCUMENT, message)


class StoreDb(Repository):
    """Orders, appointments and loyalty cards; safe from any thread (the owner's lock)."""

    def __init__(self, store: Path | StoreDatabase) -> None:
        super().__init__(store)
        self.path = self._store.path

    def _one(self, sql: str, args: tuple[Any, ...]) -> dict[str, Any] | None:
        with self._store.reading() as db:
            cur = db.execute(sql, args)
            cur.row_factory = sqlite3.Row
            row = cur.fetchone()
        return dict(row) if row is not None else None

    def order(self, order_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM orders WHERE order_id = ?", (order_id,))

    def order_by_code(self, code: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM orders WHERE code = ?", (code.upper(),))

    def appointment(self, appt_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM appointments WHERE appt_id = ?", (appt_id,))

    def appointment_by_code(self, code: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM appointments WHERE code = ?", (code.upper(),))

    def loyalty(self, card: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM loyalty WHERE card = ?", (card.lower(),))

    @retry_when_full
    def mark(self, table: str, key: str, column: str) -> None:
        """Set a check-in time column to now for one order or appointment."""
        keys = {"orders": "order_id", "appointments": "appt_id"}
        if table not in keys or column not in ("checked_in_at", "handed_over_at"):
            raise ValueError(f"cannot mark {table}.{column}")
        with self._store.writing() as db:
            db.execute(f"UPDATE {table} SET {column} = ? WHERE {keys[table]} = ?",  # noqa: S608
                       (time.time(), key))
            if column == "handed_over_at":
                db.execute("UPDATE orders SET status = 'collected' WHERE order_id = ?",
                           (key,))

    @retry_when_full
    def erase_rows_of(self, subject: str) -> dict[str, int]:
        """Remove a data subject (a loyalty card, an order or appointment id or code) from
        the check-in tables; how many rows of each."""
        removed: dict[str, int] = {}
        with self._store.erasing() as db:
            for table, where, args in (
                    ("loyalty", "card = ?", (subject.lower(),)),
                    ("orders", "order_id = ? OR code = ?", (subject, subject.upper())),
                    ("appointments", "appt_id = ? OR code = ?", (subject, subject.upper()))):
                cur = db.execute(f"DELETE FROM {table} WHERE {where}", args)  # noqa: S608
                removed[table] = cur.rowcount
        return removed

    @retry_when_full
    def retention_sweep(self, cutoff: float) -> dict[str, int]:
        """Orders and loyalty cards not updated since `cutoff`, appointments that were due
        before it."""
        removed: dict[str, int] = {}
        with self._store.writing() as db:
            for table, column in (("orders", "updated"), ("appointments", "at"),
                                  ("loyalty", "updated")):
                removed[table] = db.execute(
                    f"DELETE FROM {table} WHERE {column} < ?", (cutoff,)).rowcount  # noqa: S608
        return removed

    def queue(self, limit: int = QUEUE_DEFAULT) -> tuple[list[dict[str, Any]], int]:
        """Orders checked in and not yet handed over, longest waiting first: at most `limit`
        of them, and how many there are in all."""
        where = ("FROM orders WHERE checked_in_at IS NOT NULL AND handed_over_at IS NULL "
                 "AND status != 'cancelled'")
        with self._store.reading() as db:
            total = db.execute(f"SELECT count(*) {where}").fetchone()[0]
            cur = db.execute(
                f"SELECT order_id, first_name, status, checked_in_at {where} "
                "ORDER BY checked_in_at, order_id LIMIT ?", (limit,))
            cur.row_factory = sqlite3.Row
            rows = cur.fetchall()
        return [dict(r) for r in rows], int(total)

    def snapshot(self, table: str, rows: list[dict[str, Any]]) -> int:
        """The table becomes exactly `rows`, in one transaction (check-in state of the rows
        that stay is kept)."""
        return self._write(table, rows, exact=True)

    def replace(self, table: str, rows: list[dict[str, Any]]) -> int:
        """Insert or update rows (an import); check-in state of existing rows is kept."""
        return self._write(table, rows, exact=False)

    @retry_when_full
    def patch(self, table: str, rows: list[dict[str, Any]]) -> list[str]:
        """Partial rows (an increment): each changes only the columns it carries — a row of
        just an id and a status keeps the code, name and ETA; a row for an id the table lacks
        is added with the defaults for the rest (IncompleteRow, and nothing written, if it
        cannot be: an order with neither code nor name, an appointment without a time).
        Check-in state is kept. The orders that turned ready while their shopper is checked
        in and waiting."""
        cols = COLUMNS[table]
        key = cols[0]
        now = time.time()
        turned_ready: list[str] = []
        with self._store.writing() as db:
            for row in rows:
                given = [c for c in cols[1:] if c in row]
                cur = db.execute(f"SELECT * FROM {table} WHERE {key} = ?",  # noqa: S608
                                 (row[key],))
                cur.row_factory = sqlite3.Row
                old = cur.fetchone()
                if old is None:
                    self._insert_new(db, table, row, now)
                    continue
                if given:
                    db.execute(f"UPDATE {table} SET "  # noqa: S608
                               + ", ".join(f"{c} = ?" for c in (*given, "updated"))
                               + f" WHERE {key} = ?", (*(row[c] for c in given), now, row[key]))
                if table == "orders" and row.get("status") == "ready" \
                        and old["status"] != "ready" and old["checked_in_at"] is not None \
                        and old["handed_over_at"] is None:
                    turned_ready.append(str(row[key]))
        return turned_ready

    @staticmethod
    def _insert_new(db: sqlite3.Connection, table: str, row: dict[str, Any],
                    now: float) -> None:
        cols = COLUMNS[table]
        full = {c: row.get(c, DEFAULTS.get(c)) for c in cols}
        if table == "orders" and not full["code"] and not full["first_name"]:
            raise IncompleteRow(f"order {full['order_id']!r} is new here and needs a code or a "
                                "first_name")
        if table == "appointments" and full["at"] is None:
            raise IncompleteRow(f"appointment {full['appt_id']!r} is new here and needs its "
                                "time (at)")
        db.execute(f"INSERT INTO {table} ({', '.join(cols)}, updated) "  # noqa: S608
                   f"VALUES ({', '.join('?' for _ in cols)}, ?)", (*full.values(), now))

    @retry_when_full
    def _write(self, table: str, rows: list[dict[str, Any]], exact: bool) -> int:
        cols = COLUMNS[table]
        now = time.time()
        sql = (f"INSERT INTO {table} ({', '.join(cols)}, updated) "  # noqa: S608
               f"VALUES ({', '.join('?' for _ in cols)}, ?) ON CONFLICT({cols[0]}) DO UPDATE SET "
               + ", ".join(f"{c} = excluded.{c}" for c in (*cols[1:], "updated")))
        keep = [r[cols[0]] for r in rows]
        with self._store.writing() as db:
            if exact:
                marks = ",".join("?" for _ in keep) or "NULL"
                db.execute(f"DELETE FROM {table} WHERE {cols[0]} "  # noqa: S608
                           f"NOT IN ({marks})", keep)
            db.executemany(sql, [(*(r[c] for c in cols), now) for r in rows])
        return len(rows)
