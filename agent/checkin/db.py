"""The store's check-in data: orders to pick up, appointments, loyalty cards.

A separate SQLite file from the outbox (`[kiosk] store_db`): it is reference data that
upstream sync or `o2o-edge orders import` replaces, not events. Names are first names only —
what the kiosk may show.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from agent.localdb import immediate, open_db, retry_when_full
from agent.storedb_file import is_damage, mark_damaged

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    code TEXT UNIQUE,            -- the short code a shopper can type
    first_name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'preparing',  -- preparing, ready, collected, cancelled
    eta_min INTEGER NOT NULL DEFAULT 3,
    store TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL,
    checked_in_at REAL,
    handed_over_at REAL
);
CREATE TABLE IF NOT EXISTS appointments (
    appt_id TEXT PRIMARY KEY,
    code TEXT UNIQUE,
    first_name TEXT NOT NULL DEFAULT '',
    at REAL NOT NULL,            -- epoch seconds
    service TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL,
    checked_in_at REAL
);
CREATE TABLE IF NOT EXISTS loyalty (
    card TEXT PRIMARY KEY,       -- a loyalty code (QR) or a card's UID (NFC), lowercase hex
    first_name TEXT NOT NULL DEFAULT '',
    points INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL
);
"""

# The staff queue's rows in one answer: a reply line stays far under the kiosk's 1 MiB line
# (a row is ~230 bytes at most, so QUEUE_MAX rows are ~230 KB) however many wait.
QUEUE_DEFAULT: Final = 200
QUEUE_MAX: Final = 1000
ORDER_STATUSES = ("preparing", "ready", "collected", "cancelled")


class StoreDb:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_db(path, SCHEMA)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        # damage met while running (the start-time check cannot see pages that go bad later):
        # the agent's health then asks for a restart, which moves the file aside
        self.damage = ""

    @contextlib.contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; damage it meets is noted before it is raised."""
        with self._lock:
            try:
                yield self._db
            except sqlite3.DatabaseError as exc:
                if is_damage(exc) and not self.damage:
                    self.damage = str(exc)[:200]
                    mark_damaged(self.path, self.damage)
                    log.error("the store database %s is damaged (%s): restart the agent; it "
                              "moves the file aside and starts a fresh one", self.path, exc)
                raise

    def close(self) -> None:
        self._db.close()

    def _one(self, sql: str, args: tuple[Any, ...]) -> dict[str, Any] | None:
        with self._locked() as db:
            row = db.execute(sql, args).fetchone()
        return dict(row) if row is not None else None

    def order(self, order_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM orders WHERE order_id = ?", (order_id,))

    def order_by_code(self, code: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM orders WHERE code = ?", (code.upper(),))

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
        with self._locked() as db:
            db.execute(f"UPDATE {table} SET {column} = ? WHERE {keys[table]} = ?",  # noqa: S608
                       (time.time(), key))
            if column == "handed_over_at":
                db.execute("UPDATE orders SET status = 'collected' WHERE order_id = ?",
                           (key,))

    @retry_when_full
    def erase_subject(self, subject: str) -> dict[str, int]:
        """Remove a data subject (a loyalty card, an order or appointment id) from every
        table here, cached upstream documents that mention it included; says how much."""
        needle = json.dumps(subject)
        removed: dict[str, int] = {}
        with self._locked() as conn:
            conn.execute("PRAGMA secure_delete = ON")
            with immediate(conn) as db:
                for table, where, args in (
                        ("loyalty", "card = ?", (subject.lower(),)),
                        ("orders", "order_id = ? OR code = ?", (subject, subject.upper())),
                        ("appointments", "appt_id = ? OR code = ?", (subject, subject.upper()))):
                    cur = db.execute(f"DELETE FROM {table} WHERE {where}", args)  # noqa: S608
                    removed[table] = cur.rowcount
                has_docs = db.execute(
                    "SELECT 1 FROM sqlite_master WHERE name = 'link_docs'").fetchone()
                removed["cached_documents"] = db.execute(
                    "UPDATE link_docs SET raw = x'' WHERE instr(raw, ?) > 0",
                    (needle.encode(),)).rowcount if has_docs else 0
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return removed

    def queue(self, limit: int = QUEUE_DEFAULT) -> tuple[list[dict[str, Any]], int]:
        """Orders checked in and not yet handed over, longest waiting first: at most `limit`
        of them, and how many there are in all."""
        where = ("FROM orders WHERE checked_in_at IS NOT NULL AND handed_over_at IS NULL "
                 "AND status != 'cancelled'")
        with self._locked() as db:
            total = db.execute(f"SELECT count(*) {where}").fetchone()[0]
            rows = db.execute(
                f"SELECT order_id, first_name, status, checked_in_at {where} "
                "ORDER BY checked_in_at, order_id LIMIT ?", (limit,)).fetchall()
        return [dict(r) for r in rows], int(total)

    def snapshot(self, table: str, rows: list[dict[str, Any]]) -> int:
        """The table becomes exactly `rows`, in one transaction (check-in state of the rows
        that stay is kept)."""
        return self._write(table, rows, exact=True)

    def replace(self, table: str, rows: list[dict[str, Any]]) -> int:
        """Insert or update rows (an import); check-in state of existing rows is kept."""
        return self._write(table, rows, exact=False)

    @retry_when_full
    def _write(self, table: str, rows: list[dict[str, Any]], exact: bool) -> int:
        cols = {"orders": ("order_id", "code", "first_name", "status", "eta_min", "store"),
                "appointments": ("appt_id", "code", "first_name", "at", "service"),
                "loyalty": ("card", "first_name", "points")}[table]
        now = time.time()
        sql = (f"INSERT INTO {table} ({', '.join(cols)}, updated) "  # noqa: S608
               f"VALUES ({', '.join('?' for _ in cols)}, ?) ON CONFLICT({cols[0]}) DO UPDATE SET "
               + ", ".join(f"{c} = excluded.{c}" for c in (*cols[1:], "updated")))
        keep = [r[cols[0]] for r in rows]
        with self._locked() as conn, immediate(conn) as db:
            if exact:
                marks = ",".join("?" for _ in keep) or "NULL"
                db.execute(f"DELETE FROM {table} WHERE {cols[0]} "  # noqa: S608
                           f"NOT IN ({marks})", keep)
            db.executemany(sql, [(*(r[c] for c in cols), now) for r in rows])
        return len(rows)
