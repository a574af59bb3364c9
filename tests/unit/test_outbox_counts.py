"""The outbox's bytes and events kept by the writer and saved now and then
(agent/outbox/counts.py): exact after a clean stop, counted again after a crash, never
changed by a transaction that was rolled back."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import time
from pathlib import Path

import pytest

from agent.outbox import counts as counts_mod
from agent.outbox.store import OutboxStore
from tests.unit.test_outbox_writer_survival import depth  # the file's saved depth

ROW = ("a", 5, "o2o.test.ev", 0.0, 10, "B", "{}")


def _crash_after_writes(path: str, n: int) -> None:
    store = OutboxStore(Path(path), max_bytes=10**8, ttl_s=86400.0)
    for _ in range(n):
        store.transact([ROW], [])
    store.conn.execute("PRAGMA wal_checkpoint")  # the rows are in the file for sure
    os._exit(0)  # no close: the counts of this writer never reach the file


def test_the_counters_are_not_written_with_each_event_and_exact_after_a_stop(
        tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    store = OutboxStore(path, max_bytes=10**8, ttl_s=86400.0)
    try:
        _, numbers = store.transact([ROW, ROW, ROW], [])
        store.transact([], numbers[:1])
        assert store.counts.totals[1] == 2  # the writer's own figure, exact
        assert depth(path) == 0  # the file's: not written with these transactions
    finally:
        store.close()
    assert depth(path) == 2  # saved when the file was closed


def test_a_writer_that_died_leaves_counts_that_the_next_one_counts_again(
        tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    OutboxStore(path, max_bytes=10**8, ttl_s=86400.0).close()
    child = multiprocessing.get_context("spawn").Process(
        target=_crash_after_writes, args=(str(path), 7))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert depth(path) == 0  # what the dead writer never saved
    store = OutboxStore(path, max_bytes=10**8, ttl_s=86400.0)
    try:
        assert store.counts.totals[1] == 7
    finally:
        store.close()
    assert depth(path) == 7


def test_the_counts_are_saved_every_so_often_while_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(counts_mod, "SAVE_S", 0.05)
    path = tmp_path / "o.db"
    store = OutboxStore(path, max_bytes=10**8, ttl_s=86400.0)
    try:
        store.transact([ROW], [])
        time.sleep(0.1)
        store.transact([ROW], [])  # due: saved in this transaction
        assert depth(path) == 2
    finally:
        store.close()


def test_a_transaction_rolled_back_leaves_the_counts_as_they_were(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    store = OutboxStore(path, max_bytes=10**8, ttl_s=86400.0)
    try:
        store.transact([ROW], [])
        bad = ("b", 5, "o2o.test.ev", 0.0, 10, "B", None)  # NOT NULL body: refused
        with pytest.raises(sqlite3.IntegrityError):
            store.transact([ROW, bad], [])  # type: ignore[list-item]
        assert store.counts.totals[1] == 1
    finally:
        store.close()
    assert depth(path) == 1


def test_a_writer_that_died_beside_another_is_counted_again_after_both(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    a = OutboxStore(path, max_bytes=10**8, ttl_s=86400.0)  # alone
    b = OutboxStore(path, max_bytes=10**8, ttl_s=86400.0)  # beside it
    a.transact([ROW] * 10, [])  # in a's memory only
    # a dies: its connection and its lock go with its process, nothing saved
    a.conn.close()
    a.counts._unlock()
    b.close()  # cleanly, last out
    c = OutboxStore(path, max_bytes=10**8, ttl_s=86400.0)
    try:
        assert c.counts.totals[1] == 10  # counted again: a never said it closed
        numbers = [n for (n,) in c.conn.execute("SELECT n FROM events")]
        c.transact([], numbers)
    finally:
        c.close()
    d = OutboxStore(path, max_bytes=10**8, ttl_s=86400.0)
    try:
        assert d.counts.totals == (0, 0)
    finally:
        d.close()
