"""Row numbers that carry the priority (agent/outbox/schema.py): files numbered the old way are
renumbered when the writer opens them, in drain order; no index is written with an event; an
agent from before can still write the file after a rollback."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from agent.outbox import OutboxReader, schema
from agent.outbox.schema import KEY_SHIFT, LEGACY_FLOOR, migrate
from agent.outbox.store import OutboxStore
from tests.unit.test_outbox import bodies, submit, writer

OLD_INSERT = ("INSERT INTO events (id, priority, type, created, size, bootid, body)"
              " VALUES (?, ?, ?, ?, ?, ?, ?)")


def old_rows(conn: sqlite3.Connection, priorities: list[int], tag: str) -> None:
    """Rows as an agent from before wrote them: numbered by AUTOINCREMENT, in this order."""
    for i, p in enumerate(priorities):
        body = json.dumps({"id": f"{tag}{i}", "seq": i + 1, "priority": p})
        conn.execute(OLD_INSERT, (f"{tag}{i}", p, "o2o.test.ev", time.time(), len(body), "B",
                                  body))
        conn.execute("UPDATE counters SET value = value + 1 WHERE name = 'events'")


def test_a_file_numbered_the_old_way_drains_in_the_same_order_after_the_update(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema, "RENUMBER_CHUNK", 3)  # renumbered over three transactions
    path = tmp_path / "o.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn)
    old_rows(conn, [5, 9, 2, 5, 9, 7, 0, 5], "old")
    conn.close()
    w = writer(path)
    new = submit(w, "o2o.kiosk.checkin", 1)  # priority 9: after the old priority-9 rows
    w.stop()
    # as an agent from before would have sent them: priority high to low, then oldest first
    after = [e["id"] for e in bodies(path)]
    assert after == ["old1", "old4", *new, "old5", "old0", "old3", "old7", "old2", "old6"]
    db = sqlite3.connect(path)
    rows = db.execute("SELECT n, priority FROM events").fetchall()
    indexes = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='index'"
                                        " AND tbl_name='events'")]
    db.close()
    assert all(n >> KEY_SHIFT == p for n, p in rows)
    assert indexes == []  # nothing but the table is written with an event


def test_rows_an_agent_from_before_writes_after_a_rollback_are_kept_and_renumbered(
        tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    w = writer(path)
    first = submit(w, "o2o.nfc.tap", 2)
    w.stop()
    # rolled back: the older agent numbers its rows with AUTOINCREMENT, above every key
    conn = sqlite3.connect(path, isolation_level=None)
    old_rows(conn, [9, 5], "rb")
    numbers = [n for (n,) in conn.execute("SELECT n FROM events WHERE id LIKE 'rb%'")]
    conn.close()
    assert all(n > LEGACY_FLOOR for n in numbers)
    # the rows of the update stay readable to it, in its order (it reads by priority)
    ids = [e["id"] for e in bodies(path)]
    assert set(ids) == {*first, "rb0", "rb1"}

    w = writer(path)  # updated again
    later = submit(w, "o2o.nfc.tap", 1)
    w.stop()
    assert [e["id"] for e in bodies(path)] == ["rb0", *first, *later, "rb1"]
    r = OutboxReader(path)
    assert r.stats()["depth"] == 5
    r.close()


def test_a_number_is_not_given_twice_while_the_file_is_open(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    store = OutboxStore(path, max_bytes=10**8, ttl_s=86400.0)
    row = ("a", 7, "o2o.nfc.tap", time.time(), 2, "B", "{}")
    _, (n1,) = store.transact([row], [])
    store.transact([], [n1])  # the newest row deleted: its number is free in the file
    _, (n2,) = store.transact([row], [])
    store.close()
    assert n2 > n1 and n1 >> KEY_SHIFT == 7 == n2 >> KEY_SHIFT


def test_forward_back_and_forward_again_with_unsent_critical_rows_keeps_them_in_order(
        tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    w = writer(path)
    first = submit(w, "o2o.kiosk.checkin", 5)  # priority 9, the link down: not sent
    w.stop()
    conn = sqlite3.connect(path, isolation_level=None)  # rolled back: the older agent's own
    old_rows(conn, [9], "rb")                          # critical notice, AUTOINCREMENT's
    conn.close()
    w = writer(path)  # forward again: nothing set aside, nothing out of order
    later = submit(w, "o2o.kiosk.checkin", 1)
    w.stop()
    assert not list(tmp_path.glob("o.db.corrupt-*"))
    assert [e["id"] for e in bodies(path)][:7] == [*first, "rb0", *later]
