"""The disk reserve beside the outbox: really allocated, given back when the disk is full
before anything is dropped, taken again when there is room."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from agent.envelope import make_pending
from agent.outbox import writer as writer_mod
from agent.outbox.reserve import DiskReserve, release_reserve
from agent.outbox.writer import OutboxWriter
from tests.conftest import wait_for


def test_reserve_holds_real_blocks_and_gives_them_back(tmp_path: Path) -> None:
    r = DiskReserve(tmp_path / "o.db.reserve", 1 << 20)
    assert r.take() and r.held
    assert os.stat(r.path).st_blocks * 512 >= 1 << 20  # allocated, not a sparse file
    assert r.release() and not r.path.exists() and r.releases == 1
    assert not r.release()  # nothing left to give
    assert r.take() and r.held


def test_reserve_is_not_taken_when_the_disk_cannot_spare_it_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.statvfs(tmp_path)

    class Tight:
        f_frsize = real.f_frsize
        f_bavail = (1 << 20) // real.f_frsize  # 1 MiB free for a 1 MiB reserve

    monkeypatch.setattr(os, "statvfs", lambda p: Tight())
    r = DiskReserve(tmp_path / "r", 1 << 20)
    assert not r.take() and not r.path.exists()


def test_a_full_disk_releases_the_reserve_first_and_nothing_is_dropped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_mod, "RESERVE_RETRY_S", 0.05)
    w = OutboxWriter(tmp_path / "o.db", max_bytes=50 << 20, ttl_s=86400.0,
                     source="o2o-edge://s/d", bootid="B", reserve_bytes=1 << 20)
    w.start()
    w.reserve.install()
    assert w.reserve.held
    assert w._store is not None
    real = w._store.transact
    full = {"left": 1}

    def transact(*args: Any) -> Any:
        if full["left"]:  # the disk is full once; the reserve's space is what helps
            full["left"] -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return real(*args)

    monkeypatch.setattr(w._store, "transact", transact)
    first = w.submit([make_pending("o2o.kiosk.checkin", {"order": "A"}, 1.0)]).result(10)
    assert not w.reserve.held and w.reserve.releases == 1
    assert not w.drops.count
    w.submit([make_pending("o2o.nfc.tap", {"n": 1}, 2.0)]).result(10)
    wait_for(lambda: w.reserve.held, 10, what="the reserve taken again (tried every 0.05 s)")
    w.submit([make_pending("o2o.nfc.tap", {"n": 2}, 3.0)]).result(10)
    w.stop()
    assert w.reserve.held  # taken again: the disk had room
    db = sqlite3.connect(tmp_path / "o.db")
    # in commit order: the events' sequence numbers (the row order is the drain order)
    bodies = sorted((b for (b,) in db.execute("SELECT body FROM events")),
                    key=lambda b: json.loads(b)["seq"])
    db.close()
    assert first[0].id in bodies[0]
    notices = [b for b in bodies if "o2o.agent.outbox.reserve" in b]
    assert len(notices) == 2 and '"released"' in notices[0] and '"taken"' in notices[1]
    # the events stored since say the disk full is over: status no longer says it
    assert w.last_error == ""


def test_other_writers_release_the_installed_reserve(tmp_path: Path) -> None:
    r = DiskReserve(tmp_path / "r", 1 << 16).install()
    assert r.take()
    assert release_reserve() and not r.held
    assert not release_reserve()


def test_a_roll_up_that_meets_a_full_disk_gives_up_the_reserve_and_loses_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib
    from collections.abc import Iterator

    from agent.kpi import Kpis
    from agent.storedb import database as storedb_mod

    reserve = DiskReserve(tmp_path / "r", 1 << 16).install()
    assert reserve.take()
    k = Kpis(tmp_path / "store.db")
    now = time.time()
    k.add_bodies([("o2o.nfc.tap", now, '{"data":{}}')] * 3)
    real = storedb_mod.immediate
    full = {"left": 1}

    @contextlib.contextmanager
    def filling(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        with real(db) as conn:
            yield conn
            if full["left"]:  # the commit finds the disk full; SQLite rolls back
                full["left"] -= 1
                raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(storedb_mod, "immediate", filling)
    assert k.flush() > 0
    assert not reserve.held and reserve.releases == 1
    day = k.day(int(now // 86400 * 86400))
    k.close()
    assert sum(day["taps"]) == 3  # written by the second try, not lost with the first
