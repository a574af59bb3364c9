"""Salvage of a damaged outbox reads the rows a damaged interior page hides from the pages
themselves, and never brings back a row that was deleted (sent or dropped) before."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from agent.envelope import make_pending
from agent.outbox import OutboxReader, OutboxWriter


def writer(path: Path, bootid: str = "B1") -> OutboxWriter:
    w = OutboxWriter(path, max_bytes=256 * 1024 * 1024, ttl_s=86400.0,
                     source="o2o-edge://s/d", bootid=bootid)
    w.start()
    return w


def ids_in(path: Path) -> set[str]:
    r = OutboxReader(path)
    try:
        return {json.loads(row.body)["id"] for row in r.fetch(None, 1_000_000)}
    finally:
        r.close()


def interior_pages(path: Path) -> list[int]:
    """The events table's interior pages below its root (each one hides many leaves)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'").fetchone()[0]
        return [p for (p,) in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'events' AND pagetype = 'internal'")
            if p != root]
    finally:
        conn.close()


def test_rows_below_a_damaged_interior_page_are_recovered_and_deleted_ones_stay_gone(
        tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    w = writer(path)
    for _ in range(12):
        w.submit([make_pending("o2o.nfc.tap", {"pad": "p" * 400, "i": i}, time.time())
                  for i in range(500)]).result(30)
    r = OutboxReader(path)
    sent = r.fetch(None, 1500)  # what the broker acknowledged: deleted, its pages freed
    r.close()
    w.ack(w.generation, [row.n for row in sent])
    w.stop()
    sent_ids = {json.loads(row.body)["id"] for row in sent}
    waiting = ids_in(path)
    assert len(waiting) == 4500 and not waiting & sent_ids
    pages = interior_pages(path)
    assert pages, "the table should be deep enough to have interior pages below its root"
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with path.open("r+b") as fh:  # no connection is open on it: the writer has stopped
        fh.seek((pages[len(pages) // 2] - 1) * page_size)
        fh.write(b"\xa5" * page_size)

    w = writer(path, bootid="B2")
    w.stop()
    assert w.quarantined, "the damage should be found at start"
    kept = ids_in(path)
    assert not kept & sent_ids, "a deleted event came back"
    assert waiting <= kept, f"{len(waiting - kept)} waiting events lost"
