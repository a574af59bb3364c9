"""What the outbox writes per event (SD-card wear): the page size of a new file, deletes of
acknowledged rows without an fsync of their own (or held for the next events' transaction),
and the write-ahead log an event committed and deleted on its own costs."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from agent.envelope import make_pending
from agent.outbox import OutboxReader, OutboxWriter
from agent.outbox.acks import ACK_HOLD_S
from agent.outbox.schema import migrate
from agent.outbox.store import OutboxStore
from agent.outbox.writer import Committed
from tests.conftest import wait_for


def writer(path: Path) -> OutboxWriter:
    w = OutboxWriter(path, max_bytes=50 * 1024 * 1024, ttl_s=86400.0,
                     source="o2o-edge://s/d", bootid="BOOT1")
    w.start()
    return w


def one(w: OutboxWriter, i: int) -> list[Committed]:
    # sizes vary a little, as real events do (the counters change in every transaction)
    return w.submit([make_pending("o2o.nfc.tap", {"tag": "shelf-017", "i": i, "pad": "x" * (i % 9)},
                                  time.time())]).result(10)


def depth(path: Path) -> int:
    """Rows in the file, counted (its saved depth is behind a running writer's: counts.py)."""
    r = OutboxReader(path)
    try:
        return sum(r.stats(detail=True)["by_priority"].values())
    finally:
        r.close()


def page_size(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()


def test_a_new_outbox_has_small_pages(tmp_path: Path) -> None:
    w = writer(tmp_path / "o.db")
    one(w, 1)
    w.stop()
    assert page_size(tmp_path / "o.db") == 1024


def test_an_existing_outbox_keeps_its_page_size_and_its_events(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    # a file as earlier versions made it: SQLite's default 4 KiB pages, the same schema
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("PRAGMA journal_mode = WAL")
    migrate(conn)
    conn.close()
    assert page_size(path) == 4096
    w = writer(path)
    first = one(w, 1)
    w.stop()
    w = writer(path)
    second = one(w, 2)
    w.stop()
    assert page_size(path) == 4096
    r = OutboxReader(path)
    try:
        assert [row.n for row in r.fetch(None, 10)] == [first[0].n, second[0].n]
    finally:
        r.close()


def test_a_pubacked_row_is_gone_at_once_and_events_stay_fully_synced(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    w = writer(path)
    try:
        rows = one(w, 1)
        w.ack(w.generation, [rows[0].n])
        wait_for(lambda: depth(path) == 0, 5, what="the acknowledged row deleted")
    finally:
        w.stop()
    store = OutboxStore(path, max_bytes=1 << 20, ttl_s=86400.0)
    try:
        row = ("01ID", 5, "o2o.nfc.tap", time.time(), 2, "BOOT1", "{}")
        _, n = store.transact([row], [])
        store.transact([], [n])  # a delete alone: no fsync of its own
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        store.transact([row], [])  # events: synchronous=FULL, whatever came before
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        store.close()


def test_a_held_puback_is_deleted_in_the_next_events_transaction(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    w = writer(path)
    try:
        before = w.transactions
        first = one(w, 1)
        w.ack(w.generation, [first[0].n], hold=True)
        wait_for(lambda: w.queue_depth == 0, 10, what="the writer took the PUBACK")
        one(w, 2)
        # two transactions, not three: the delete rode on the second event's
        assert w.transactions == before + 2
        assert depth(path) == 1
    finally:
        w.stop()


def test_a_held_puback_with_no_events_after_it_is_deleted_soon(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    w = writer(path)
    try:
        rows = one(w, 1)
        acked = time.monotonic()
        w.ack(w.generation, [rows[0].n], hold=True)
        wait_for(lambda: depth(path) == 0, ACK_HOLD_S + 10, what="the acknowledged row deleted")
        assert time.monotonic() - acked >= ACK_HOLD_S * 0.5  # held, not deleted at once
    finally:
        w.stop()
    assert depth(path) == 0


def test_held_pubacks_are_deleted_at_a_clean_stop(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    w = writer(path)
    rows = [one(w, i)[0] for i in range(5)]
    w.ack(w.generation, [r.n for r in rows], hold=True)
    w.stop()
    assert depth(path) == 0


def log_per_event(tmp_path: Path, hold: bool) -> float:
    """Write-ahead log bytes per event, each event committed on its own and its row deleted
    on PUBACK (as the uplink does at a few events per second)."""
    path = tmp_path / f"o-{hold}.db"
    wal = Path(f"{path}-wal")
    w = writer(path)
    try:
        one(w, 0)
        start = os.stat(wal).st_size  # grows only: no checkpoint comes this soon
        n = 20
        for i in range(1, n + 1):
            rows = one(w, i)
            w.ack(w.generation, [rows[0].n], hold=hold)
            if not hold:
                wait_for(lambda: w.queue_depth == 0, 5, what="the writer took the PUBACK")
        wait_for(lambda: depth(path) <= 1, 5, what="the acknowledged rows deleted")
        return (os.stat(wal).st_size - start) / n
    finally:
        w.stop()


def test_an_event_committed_and_deleted_alone_writes_little_log(tmp_path: Path) -> None:
    """It was ~37 KiB: 4 KiB pages, and a synced transaction of its own for each delete."""
    per_event = log_per_event(tmp_path, hold=False)
    assert per_event <= 10 * 1024, f"{per_event:.0f} bytes of log per event"
    held = log_per_event(tmp_path, hold=True)  # the delete rides on the next insert's pages
    assert held <= 6 * 1024, f"{held:.0f} bytes of log per event, deletes held"
