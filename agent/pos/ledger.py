"""The tills' table group of the store database: the receipts answered (idempotency) and the
one-time ledger of offer codes (agent/storedb/migrations.py step 3 made both).

Every decision is one IMMEDIATE transaction on the one connection of the file: two tills or
two kiosks asking about the same code at once are serialised by SQLite's write lock, and a
code redeemed is redeemed for every process that opens the file, after a restart too.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from agent.localdb import retry_when_full
from agent.storedb import Repository, StoreDatabase

Events = list[tuple[str, dict[str, Any]]]
Key = tuple[str, str, str]  # a receipt's (till, receipt id, action)


class Stored(NamedTuple):
    """A receipt answered before: its request's hash and the answer given."""

    body_sha256: str
    status: int
    answer: dict[str, Any]


class Redemption(NamedTuple):
    pos: str
    receipt: str
    campaign: str


class PosLedger(Repository):
    def __init__(self, store: Path | StoreDatabase,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(store)
        self.clock = clock

    @retry_when_full
    def settle(self, pos: str, receipt: str, action: str, body_sha256: str,
               decide: Callable[[sqlite3.Connection], tuple[int, dict[str, Any], Events]],
               sent: Sequence[Key] = ()) -> tuple[Stored | None, int, dict[str, Any], Events]:
        """The receipt's stored answer if it was answered (then nothing else is done), else
        `decide` runs inside the same transaction (it may redeem codes) and its answer and
        events are stored with the receipt, the events as pending until marked sent. `sent`:
        receipts whose events the outbox has committed since, marked in the same
        transaction (one write per request, not two)."""
        with self._store.writing() as db:
            row = db.execute("SELECT body_sha256, answer FROM pos_receipts WHERE pos = ? AND "
                             "receipt = ? AND action = ?", (pos, receipt, action)).fetchone()
            if row is not None:  # a replay reads only; `sent` waits for the next write
                stored = json.loads(row[1])
                return Stored(row[0], int(stored["status"]), stored["answer"]), 0, {}, []
            status, answer, events = decide(db)
            self._mark_sent(db, sent)  # with a write that is made anyway: no fsync of its own
            db.execute("INSERT INTO pos_receipts VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (pos, receipt, action, body_sha256,
                        json.dumps({"status": status, "answer": answer}),
                        json.dumps(events) if events else None, self.clock()))
        return None, status, answer, events

    @staticmethod
    def _mark_sent(db: sqlite3.Connection, keys: Sequence[Key]) -> None:
        db.executemany("UPDATE pos_receipts SET pending = NULL WHERE pos = ? AND receipt = ? "
                       "AND action = ?", keys)

    @retry_when_full
    def committed(self, keys: Sequence[Key]) -> None:
        """Receipts whose events the outbox has committed."""
        if keys:
            with self._store.writing() as db:
                self._mark_sent(db, keys)

    def pending(self) -> list[tuple[str, str, str, Events]]:
        """Receipts whose events the outbox may not have (the agent stopped between the
        decision and the commit): (pos, receipt, action, events)."""
        with self._store.reading() as db:
            rows = db.execute("SELECT pos, receipt, action, pending FROM pos_receipts "
                              "WHERE pending IS NOT NULL").fetchall()
        return [(p, r, a, [(t, d) for t, d in json.loads(ev)]) for p, r, a, ev in rows]

    @staticmethod
    def redeemed(db: sqlite3.Connection, code: str) -> Redemption | None:
        row = db.execute("SELECT pos, receipt, campaign FROM offer_ledger WHERE code = ?",
                         (code,)).fetchone()
        return Redemption(*row) if row else None

    def redemption(self, code: str) -> Redemption | None:
        with self._store.reading() as db:
            return self.redeemed(db, code)

    def redeem(self, db: sqlite3.Connection, code: str, campaign: str, offer: str,
               expires: int, pos: str, receipt: str) -> None:
        db.execute("INSERT INTO offer_ledger VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (code, campaign, offer, expires, pos, receipt, self.clock()))

    def counts(self) -> dict[str, int]:
        with self._store.reading() as db:
            receipts = db.execute("SELECT count(*) FROM pos_receipts").fetchone()[0]
            codes = db.execute("SELECT count(*) FROM offer_ledger").fetchone()[0]
        return {"receipts": int(receipts), "offers_redeemed": int(codes)}

    # --- the table group's part in retention and erasure (agent/privacy.py) ---------------

    @retry_when_full
    def retention_sweep(self, cutoff: float) -> dict[str, int]:
        """Receipts answered before `cutoff` (a till resends within minutes, not months) and
        ledger rows of codes that expired before it (an expired code is refused anyway)."""
        with self._store.writing() as db:
            r = db.execute("DELETE FROM pos_receipts WHERE at < ? AND pending IS NULL",
                           (cutoff,)).rowcount
            o = db.execute("DELETE FROM offer_ledger WHERE expires < ?", (cutoff,)).rowcount
        return {"pos_receipts": r, "offer_ledger": o}

    def erase_rows_of(self, subject: str) -> dict[str, int]:
        """Nothing: loyalty cards and codes are kept only as keyed hashes, and the answers
        stored name neither."""
        return {}
