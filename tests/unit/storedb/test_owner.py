"""One owner of store.db per process: the file is opened once however many parts use it,
the parts share it safely across threads, a second owner of the same file is the same
owner, and damage met by any part is noted once for the agent's health."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from agent.checkin import StoreDb
from agent.kpi import Kpis
from agent.privacy import Privacy
from agent.storedb import StoreDatabase
from agent.storelink.cache import LinkCache

ORDER = {"order_id": "A-1", "code": "K7Q2M9", "first_name": "Anna", "status": "ready",
         "eta_min": 3, "store": ""}


def descriptors_of(path: Path) -> int:
    """How many of this process's file descriptors are open on `path` itself."""
    target = os.path.realpath(path)
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                n += 1
        except OSError:  # closed while listed (the listing's own descriptor)
            continue
    return n


def test_every_part_built_from_the_path_shares_one_connection(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    parts = [StoreDb(path), Privacy(path), Kpis(path), LinkCache(path)]
    # the old code opened the file once per part (four descriptors; closing one of them
    # while another part held a lock dropped that lock)
    assert descriptors_of(path) == 1
    parts[0].replace("orders", [ORDER])
    late = LinkCache(path)  # a part built later: still no second descriptor
    assert descriptors_of(path) == 1
    late.close()
    for part in parts:
        part.close()
    assert descriptors_of(path) == 0  # the last one to give it back closed it


def test_a_second_owner_of_the_same_file_is_the_same_owner(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    first = StoreDatabase.open(path)
    link = tmp_path / "link.db"
    link.symlink_to(path)
    second = StoreDatabase.open(link)  # another name of the same file
    assert second is first
    first.close()
    StoreDb(second).replace("orders", [ORDER])  # still open: one reference left
    second.close()
    assert second.closed
    with pytest.raises(sqlite3.ProgrammingError):
        StoreDb(second).order("A-1")
    third = StoreDatabase.open(path)  # a new owner once the last one closed
    assert third is not first and StoreDb(third).order("A-1") is not None
    third.close()
    other = StoreDatabase.open(tmp_path / "other.db")  # another file: another owner
    assert other is not StoreDatabase.open(path)
    other.close()


def test_repositories_given_the_owner_borrow_it(tmp_path: Path) -> None:
    store = StoreDatabase.open(tmp_path / "store.db")
    orders, kpis = StoreDb(store), Kpis(store)
    orders.close()
    kpis.close()
    assert not store.closed  # closed by who opened it, the composition root
    assert orders.path == store.path
    store.close()
    assert store.closed


def test_the_loop_and_worker_threads_use_it_at_once(tmp_path: Path) -> None:
    """Check-ins, KPI flushes, cached documents and consent from several threads on the
    one connection: every write lands, none fails ("cannot start a transaction within a
    transaction" is what unlocked sharing gives)."""
    store = StoreDatabase.open(tmp_path / "store.db")
    orders, kpis, cache = StoreDb(store), Kpis(store), LinkCache(store)
    privacy = Privacy(store, groups=(orders, cache, kpis))
    orders.replace("orders", [{**ORDER, "order_id": f"O{i}", "code": f"C{i:05d}"}
                              for i in range(50)])
    failures: list[BaseException] = []
    now = time.time()

    def work(n: int) -> None:
        try:
            for i in range(50):
                orders.mark("orders", f"O{i}", "checked_in_at")
                kpis.add_bodies([("o2o.nfc.tap", now, '{"data":{}}')])
                kpis.flush()
                cache.store("orders", f"t{n}", i, b"{}")
                assert orders.queue(5)[1] >= 1
                privacy.erase(f"app:{n}:{i}")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == []
    assert sum(kpis.day(int(now // 86400 * 86400))["taps"]) == 200
    assert cache.applied() == {("orders", f"t{n}"): 49 for n in range(4)}
    assert len(privacy.withdrawn) == 200
    store.close()


def test_damage_met_by_any_part_is_noted_once_and_marked_for_the_next_start(
        tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = StoreDatabase.open(path)
    orders = StoreDb(store)
    with pytest.raises(sqlite3.DatabaseError), store.reading():
        raise sqlite3.DatabaseError("database disk image is malformed")
    assert store.damage == orders.damage == "database disk image is malformed"
    assert "met while running" in (tmp_path / "store.db.damaged").read_text()
    with pytest.raises(sqlite3.OperationalError), store.writing():
        raise sqlite3.OperationalError("database is locked")  # not damage
    assert store.damage == "database disk image is malformed"
    store.close()


def test_an_erasure_leaves_the_shared_connection_as_it_found_it(tmp_path: Path) -> None:
    """Erasing zeroes the deleted pages (secure_delete) for its own write only: the check-ins
    and roll-ups written after it on the same connection are not slowed by it."""
    store = StoreDatabase.open(tmp_path / "store.db")
    orders = StoreDb(store)
    orders.replace("orders", [ORDER])
    with store.reading() as db:
        before = db.execute("PRAGMA secure_delete").fetchone()[0]
    assert orders.erase_rows_of("A-1")["orders"] == 1
    with store.reading() as db:
        assert db.execute("PRAGMA secure_delete").fetchone()[0] == before
    store.close()
