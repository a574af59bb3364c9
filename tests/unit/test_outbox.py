from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from agent.envelope import make_pending
from agent.errors import AgentError
from agent.outbox import OutboxReader, OutboxWriter
from agent.outbox.schema import migrate
from agent.outbox.store import OutboxStore


def writer(path: Path, **kw: object) -> OutboxWriter:
    opts: dict[str, object] = {"max_bytes": 50 * 1024 * 1024, "ttl_s": 86400.0,
                               "source": "o2o-edge://s/d", "bootid": "BOOT1"}
    opts.update(kw)
    w = OutboxWriter(path, **opts)  # type: ignore[arg-type]
    w.start()
    return w


def submit(w: OutboxWriter, etype: str, n: int, created: float | None = None,
           data: object = None) -> list[str]:
    now = time.time() if created is None else created
    res = w.submit([make_pending(etype, data if data is not None else {"i": i}, now)
                    for i in range(n)]).result(10)
    return [c.id for c in res]


def bodies(path: Path) -> list[dict]:  # type: ignore[type-arg]
    r = OutboxReader(path)
    try:
        return list(r.iter_events())
    finally:
        r.close()


def test_seq_is_gapless_and_survives_in_order(tmp_path: Path) -> None:
    w = writer(tmp_path / "o.db")
    futs = [w.submit([make_pending("o2o.test.ev", {"k": k, "j": j}, time.time())
                      for j in range(7)]) for k in range(50)]
    results = [f.result(10) for f in futs]
    w.stop()
    seqs = [c.seq for r in results for c in r]
    assert seqs == list(range(1, 351))
    evs = bodies(tmp_path / "o.db")
    assert sorted(e["seq"] for e in evs) == list(range(1, 351))
    assert {e["bootid"] for e in evs} == {"BOOT1"}


def test_drain_order_priority_then_age(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    w = writer(path)
    submit(w, "o2o.ble.tlm", 3)
    submit(w, "o2o.nfc.tap", 2)
    submit(w, "o2o.kiosk.checkin", 2)
    w.stop()
    r = OutboxReader(path)
    types = [json.loads(row.body)["type"] for row in r.fetch(None, 100)]
    assert types == ["o2o.kiosk.checkin"] * 2 + ["o2o.nfc.tap"] * 2 + ["o2o.ble.tlm"] * 3
    first_two = r.fetch(None, 2)
    rest = r.fetch((first_two[-1].priority, first_two[-1].n), 100)
    assert [x.n for x in first_two + rest] == [x.n for x in r.fetch(None, 100)]
    r.close()


def test_ack_deletes_only_current_generation(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    w = writer(path)
    submit(w, "o2o.nfc.tap", 10)
    r = OutboxReader(path)
    rows = r.fetch(None, 4)
    w.ack(w.generation + 1, [x.n for x in rows])  # stale generation: ignored
    w.ack(w.generation, [x.n for x in rows])
    w.stop()
    st = r.stats()
    assert st["depth"] == 6
    r.close()


def test_quota_drops_oldest_lowest_priority_first_and_reports(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    w = writer(path, max_bytes=1024 * 1024)
    checkins = submit(w, "o2o.kiosk.checkin", 200, data={"pad": "c" * 300})
    tlm_old = submit(w, "o2o.ble.tlm", 1500, data={"pad": "t" * 300})
    taps = submit(w, "o2o.nfc.tap", 1500, data={"pad": "n" * 300})
    w.stop()
    evs = bodies(path)
    ids = {e["id"] for e in evs}
    assert set(checkins) <= ids, "a check-in was dropped while telemetry was buffered"
    kept_tlm = [i for i in tlm_old if i in ids]
    # the oldest telemetry went first: what is kept is a suffix of what was captured
    assert kept_tlm == tlm_old[len(tlm_old) - len(kept_tlm):]
    assert len(kept_tlm) < len(tlm_old)
    assert set(taps) <= ids or not kept_tlm
    r = OutboxReader(path)
    st = r.stats()
    r.close()
    assert st["bytes"] <= 1024 * 1024
    assert st["dropped"]["quota"] == len(tlm_old) - len(kept_tlm) + sum(1 for i in taps if i not in ids)
    reports = [e for e in evs if e["type"] == "o2o.agent.outbox.dropped"]
    assert reports and sum(r["data"]["dropped"]["quota"] for r in reports) == st["dropped"]["quota"]


def test_ttl_drops_old_events(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    w = writer(path, ttl_s=3600.0)
    submit(w, "o2o.nfc.tap", 5, created=time.time() - 7200)
    submit(w, "o2o.nfc.tap", 3)
    w.stop()
    store = OutboxStore(path, max_bytes=10**8, ttl_s=3600.0)
    tally = store.expire(time.time())
    store.close()
    assert tally.count["ttl"] == 5
    r = OutboxReader(path)
    assert r.stats()["depth"] == 3
    assert r.stats()["dropped"]["ttl"] == 5
    r.close()


def _child_writer(path: str, boot: str, n: int) -> None:
    w = OutboxWriter(Path(path), max_bytes=10**8, ttl_s=86400.0, source="o2o-edge://s/" + boot,
                     bootid=boot, group_commit_ms=5)
    w.start()
    for k in range(n // 50):
        w.submit([make_pending("o2o.kiosk.view", {"k": k, "j": j}, time.time())
                  for j in range(50)]).result(30)
    w.stop()


def test_several_processes_write_the_same_outbox(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    OutboxStore(path, max_bytes=10**8, ttl_s=1.0).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_child_writer, args=(str(path), f"B{i}", 1000)) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    evs = bodies(path)
    for i in range(3):
        seqs = sorted(e["seq"] for e in evs if e["bootid"] == f"B{i}")
        assert seqs == list(range(1, 1001))
    r = OutboxReader(path)
    assert r.stats()["depth"] == 3000
    r.close()


def test_corrupt_file_is_quarantined_and_fresh_buffer_started(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    # SQLite's header, then garbage: a database that is damaged (a file that is no database
    # at all is refused, never moved: tests/abuse/test_disk.py)
    path.write_bytes(b"SQLite format 3\x00" + b"this is not an sqlite database at all" * 200)
    w = writer(path)
    ids = submit(w, "o2o.nfc.tap", 3)
    w.stop()
    moved = list(tmp_path.glob("o.db.corrupt-*"))
    assert len(moved) == 1 and b"this is not" in moved[0].read_bytes()[:100]
    evs = bodies(path)
    assert {e["id"] for e in evs} >= set(ids)
    notes = [e for e in evs if e["type"] == "o2o.agent.outbox.quarantined"]
    assert notes and notes[0]["data"]["moved_to"] == str(moved[0])
    assert w.quarantined == [str(moved[0])]


def test_damaged_pages_are_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    w = writer(path)
    submit(w, "o2o.nfc.tap", 2000, data={"pad": "x" * 200})
    w.stop()
    raw = bytearray(path.read_bytes())
    for off in range(8192, len(raw) - 4096, 4096):  # scribble over b-tree pages, keep header
        raw[off : off + 64] = b"\xff" * 64
    path.write_bytes(bytes(raw))
    w2 = writer(path)
    submit(w2, "o2o.nfc.tap", 1)
    w2.stop()
    assert list(tmp_path.glob("o.db.corrupt-*")), "damaged file was not moved aside"


def test_full_disk_drops_by_policy_and_keeps_running(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    w = writer(path)
    submit(w, "o2o.kiosk.checkin", 1)
    w.stop()
    # cap the file: SQLITE_FULL once 240 KiB more are used, exactly like a full disk
    conn = sqlite3.connect(path)
    pages, page_size = (conn.execute(f"PRAGMA {p}").fetchone()[0]
                        for p in ("page_count", "page_size"))
    conn.close()

    w = writer(path)
    assert w._store is not None
    w._store.conn.execute(f"PRAGMA max_page_count = {pages + 240 * 1024 // page_size}")
    tlm = []
    for _ in range(40):
        tlm += submit(w, "o2o.ble.tlm", 50, data={"pad": "t" * 200})
    checkin = submit(w, "o2o.kiosk.checkin", 5, data={"order": "A"})
    w.stop()
    assert w.drops.count["disk_full"] > 0
    evs = bodies(path)
    ids = {e["id"] for e in evs}
    assert set(checkin) <= ids
    assert len([i for i in tlm if i in ids]) < len(tlm)


def test_full_disk_with_nothing_to_drop_refuses_with_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    w = writer(path)
    assert w._store is not None
    pages = w._store.conn.execute("PRAGMA page_count").fetchone()[0]
    w._store.conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(AgentError, match="disk is full"):
        submit(w, "o2o.kiosk.checkin", 200, data={"pad": "x" * 2000})
    w._store.conn.execute("PRAGMA max_page_count = 1000000")
    assert submit(w, "o2o.kiosk.checkin", 1)  # still alive afterwards
    w.stop()
    assert w.drops.count["refused_disk_full"] == 200


def test_outbox_from_a_newer_agent_is_kept_aside_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE future (x)")
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    w = writer(path)
    submit(w, "o2o.nfc.tap", 1)
    w.stop()
    (moved,) = [p for p in tmp_path.glob("o.db.corrupt-*") if not p.name.endswith(("-wal", "-shm"))]
    kept = sqlite3.connect(moved)
    assert kept.execute("PRAGMA user_version").fetchone()[0] == 99
    kept.close()
    assert "newer than this agent" in w.last_error


def test_schema_is_versioned(tmp_path: Path) -> None:
    from agent.outbox.schema import SCHEMA_VERSION

    w = writer(tmp_path / "o.db")
    w.stop()
    conn = sqlite3.connect(tmp_path / "o.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_the_start_check_never_opens_the_file_beside_sqlite(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Closing any descriptor of a file drops every POSIX lock the process holds on it,
    SQLite's too: another writer process then resets the write-ahead log under this one and
    its later commits are lost (the test above caught it under load). Opening an outbox
    reads it through the connection only."""
    path = tmp_path / "o.db"
    OutboxStore(path, max_bytes=10**8, ttl_s=60.0).close()
    real_open = os.open
    reads: list[str] = []

    def spy(file: Any, flags: int, *args: Any, **kw: Any) -> int:
        if str(file) == str(path) and not flags & (os.O_WRONLY | os.O_RDWR):
            reads.append(str(file))  # a read-only descriptor of the database: not SQLite's
        return real_open(file, flags, *args, **kw)

    monkeypatch.setattr(os, "open", spy)
    store, moved, _ = OutboxStore.open(path, max_bytes=10**8, ttl_s=60.0)
    store.close()
    assert moved is None
    assert reads == []


def test_ttl_walks_in_commit_order_and_an_old_file_loses_its_time_index(tmp_path: Path) -> None:
    """An outbox made by the first release (with the index of the times) opens, loses that
    index, and still expires by age: every old event before the first young one, in the
    order they were committed, and the outbox's age is the first waiting event's."""
    path = tmp_path / "o.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn)  # the first release's schema, index included
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name='events_by_created'"
                        ).fetchone()[0] == 1
    conn.close()
    w = writer(path, ttl_s=3600.0)
    now = time.time()
    submit(w, "o2o.nfc.tap", 600, created=now - 7200)  # more than one sweep chunk
    submit(w, "o2o.nfc.tap", 2, created=now - 60)
    submit(w, "o2o.nfc.tap", 3, created=now - 7200)  # the clock was set back meanwhile
    w.stop()
    store = OutboxStore(path, max_bytes=10**8, ttl_s=3600.0)
    assert store.conn.execute("SELECT count(*) FROM sqlite_master WHERE "
                              "name='events_by_created'").fetchone()[0] == 0
    tally = store.expire(now)
    assert tally.count["ttl"] == 600
    assert store.expire(now).count["ttl"] == 0  # the young one holds the rest back
    store.close()
    r = OutboxReader(path)
    st = r.stats(now=now)
    r.close()
    assert st["depth"] == 5 and st["dropped"]["ttl"] == 600
    assert 59 <= st["oldest_age_s"] <= 120
