"""The outbox on a full disk (a private tmpfs filled to the last byte), read-only readers,
damage met while running, and the modes of the files it creates."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.envelope import make_pending
from agent.errors import AgentError, ConfigError, Reason
from agent.outbox import OutboxReader, OutboxWriter, open_reader
from tests.conftest import wait_for
from tests.tmpfs import fill, free_bytes, small_tmpfs

PAD = "x" * 150


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", 16) as d:
        yield d


def writer(path: Path, reserve: int = 0, bootid: str = "B") -> OutboxWriter:
    w = OutboxWriter(path, max_bytes=256 << 20, ttl_s=1e6, source="o2o-edge://s/d",
                     bootid=bootid, reserve_bytes=reserve)
    w.reserve.install()
    w.start()
    return w


def submit(w: OutboxWriter, n: int, priority: int, etype: str = "o2o.ble.presence") -> list[str]:
    evs = [make_pending(etype, {"pad": PAD, "i": i}, time.time(), priority) for i in range(n)]
    return [c.id for c in w.submit(evs).result(30)]


def backlog(path: Path, n: int, reserve: int = 0) -> list[str]:
    w = writer(path, reserve)
    ids: list[str] = []
    for _ in range(n // 500):
        ids += submit(w, 500, 5)
    w.stop()
    return ids


def depth_by_priority(path: Path) -> dict[str, int]:
    r = open_reader(path)
    try:
        return r.stats(detail=True)["by_priority"]  # type: ignore[no-any-return]
    finally:
        r.close()


def test_priority_9_displaces_priority_5_on_a_disk_the_outbox_filled(disk: Path) -> None:
    """The outbox fills its own disk with priority-5 events, then check-ins arrive: they are
    kept, the oldest priority-5 events make room for them (counted), and the disk keeps
    room for the write-ahead log, so acknowledged rows can still be deleted."""
    w = writer(disk / "outbox.db")
    while not w.drops.count:
        submit(w, 500, 5)
    assert free_bytes(disk) > 0  # the headroom: the outbox stopped growing before 0
    before = dict(w.drops.count)
    checkins = [i for _ in range(20) for i in submit(w, 50, 9, "o2o.kiosk.checkin")]
    assert w.drops.count["disk_full"] > before.get("disk_full", 0)
    assert "refused_disk_full" not in w.drops.count
    w.stop()
    r = OutboxReader(disk / "outbox.db")
    kept = {e["id"] for e in r.iter_events()}
    r.close()
    assert set(checkins) <= kept
    assert depth_by_priority(disk / "outbox.db")["5"] > 0  # only what was needed went


def test_events_are_refused_only_when_nothing_of_their_priority_or_below_is_left(
        disk: Path) -> None:
    w = writer(disk / "outbox.db")
    while not w.drops.count:
        submit(w, 500, 9, "o2o.kiosk.checkin")
    checkins = depth_by_priority(disk / "outbox.db")["9"]
    with pytest.raises(AgentError, match="disk is full"):  # more than the free pages hold:
        submit(w, 5000, 2, "o2o.ble.tlm")  # they would have to push out check-ins: refused
    assert w.drops.count["refused_disk_full"] == 5000  # the report beside them was kept
    w.stop()
    assert depth_by_priority(disk / "outbox.db")["9"] >= checkins  # not one check-in lost


def test_the_writer_starts_on_a_full_disk_by_releasing_its_reserve(disk: Path) -> None:
    path = disk / "outbox.db"
    ids = backlog(path, 5000, reserve=1 << 20)
    fill(disk)
    assert free_bytes(disk) == 0
    w = writer(path, reserve=1 << 20, bootid="B2")
    assert w.reserve.releases == 1
    checkin = submit(w, 1, 9, "o2o.kiosk.checkin")
    # what the uplink does: read, then delete what the broker acknowledged
    r = OutboxReader(path)
    rows = r.fetch(None, 2000)
    w.ack(w.generation, [row.n for row in rows])
    wait_for(lambda: len(r.fetch(None, 10_000)) < 4000, 10, what="acknowledged rows deleted")
    r.close()
    w.stop()
    acked = {json.loads(row.body)["id"] for row in rows}
    assert set(checkin) <= acked  # first in line: priority 9
    with contextlib.closing(OutboxReader(path)) as r:
        left = {e["id"] for e in r.iter_events()}
    assert not acked & left
    # nothing else went but what was dropped, counted, to make room for the check-in
    assert len(set(ids) - acked - left) == w.drops.count["disk_full"] < 100


def test_without_a_reserve_the_writer_starts_closed_and_opens_once_there_is_room(
        disk: Path) -> None:
    path = disk / "outbox.db"
    backlog(path, 2000)
    filler = fill(disk)
    w = writer(path, bootid="B2")  # old code: raised here (disk I/O error) and the agent died
    with pytest.raises(AgentError) as info:
        submit(w, 1, 9, "o2o.kiosk.checkin")
    assert info.value.reason is Reason.OUTBOX_FULL and "free disk space" in str(info.value)
    assert w.drops.count["refused_disk_full"] == 1
    filler.unlink()
    assert submit(w, 1, 9, "o2o.kiosk.checkin")
    w.stop()
    assert depth_by_priority(path) == {"9": 2, "5": 2000}  # the refusal report and the check-in


def test_read_only_tools_work_on_a_full_disk_with_the_writer_stopped_and_running(
        disk: Path) -> None:
    path = disk / "outbox.db"
    backlog(path, 1000, reserve=1 << 20)
    fill(disk)
    assert not Path(f"{path}-shm").exists()  # a clean stop: no WAL index to read with
    r = open_reader(path)  # old code: "disk I/O error" (it ran journal_mode=WAL)
    assert r.stats(detail=True)["depth"] == 1000
    r.close()
    w = writer(path, reserve=1 << 20, bootid="B2")
    submit(w, 3, 9, "o2o.kiosk.checkin")
    r = open_reader(path)  # beside the running writer: through its -shm, sees the new rows
    st = r.stats(detail=True)
    assert st["by_priority"]["9"] >= 3
    # (the file's depth is the writer's as last saved, counts.py: the rows are counted here)
    assert len(list(r.iter_events())) == sum(st["by_priority"].values())
    r.close()
    w.stop()


def test_damage_met_by_a_reader_while_running_is_moved_aside_and_capture_goes_on(
        tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    waiting = backlog(path, 3000)
    w = writer(path, bootid="B2")
    size = path.stat().st_size
    with path.open("r+b") as fh:  # pages in the middle, after the start's check
        for off in range(size // 3 // 4096 * 4096, size * 2 // 3, 4096 * 4):
            fh.seek(off)
            fh.write(b"\xa5" * 4096)
    r = OutboxReader(path)
    with pytest.raises(AgentError) as info:
        while r.fetch(None, 5000):
            pass
    assert info.value.reason is Reason.OUTBOX_CORRUPT and "damaged" in str(info.value)
    wait_for(lambda: w.quarantined, 10, what="the damaged file moved aside")
    ids = submit(w, 5, 9, "o2o.kiosk.checkin")
    w.stop()
    (moved,) = w.quarantined
    assert Path(moved).exists() and ".corrupt-" in moved
    with contextlib.closing(OutboxReader(path)) as after:
        evs = list(after.iter_events())
    assert set(ids) <= {e["id"] for e in evs}
    notes = [e for e in evs if e["type"] == "o2o.agent.outbox.quarantined"]
    assert notes and "events recovered" in notes[0]["data"]["reason"]
    # what still read back in the file moved aside waits in the new one (a twelfth of the
    # middle third's pages were overwritten: most of the backlog is kept)
    assert len(set(waiting) & {e["id"] for e in evs}) > len(waiting) * 0.8
    r.close()


def test_pages_damaged_after_a_clean_stop_are_found_at_start(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    waiting = backlog(path, 3000)
    size = path.stat().st_size
    with path.open("r+b") as fh:
        fh.seek(size // 2 // 4096 * 4096)
        fh.write(os.urandom(4096 * 3))
    w = writer(path, bootid="B2")
    assert w.quarantined and "integrity" in w.last_error
    assert "events recovered" in w.last_error
    submit(w, 1, 9, "o2o.kiosk.checkin")
    w.stop()
    with contextlib.closing(OutboxReader(path)) as r:
        kept = {e["id"] for e in r.iter_events()}
    assert len(set(waiting) & kept) >= len(waiting) - 200  # all but what was on 3 pages


def test_database_files_and_their_directory_are_private(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "umask", os.umask)  # restored however the test ends
    old = os.umask(0o022)  # a usual login umask: SQLite alone would make these 0644
    try:
        w = writer(tmp_path / "state" / "outbox.db")
        submit(w, 1, 5)
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "state").iterdir()}
        w.stop()
        from agent.checkin.db import StoreDb

        db = StoreDb(tmp_path / "state2" / "store.db")
        store_modes = {p.name: stat.S_IMODE(p.stat().st_mode)
                       for p in (tmp_path / "state2").iterdir()}
        db.close()
    finally:
        os.umask(old)
    assert modes["outbox.db"] == 0o600 and modes["outbox.db-wal"] == 0o600
    assert modes["outbox.db-shm"] == 0o600
    assert store_modes["store.db"] == 0o600 and store_modes["store.db-wal"] == 0o600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state2").stat().st_mode) == 0o700


def test_runtime_dir_under_tmp_is_per_user_and_refused_when_not_safe(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.config import load_config

    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    mine = tmp_path / f"o2o-edge-{os.getuid()}"
    cfg = load_config(None)
    assert cfg.bus.socket == mine / "agent.sock"
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700
    mine.chmod(0o777)  # another user could swap the socket
    with pytest.raises(ConfigError, match="writable by other users"):
        load_config(None)
    mine.rmdir()
    mine.mkdir()
    if os.geteuid() == 0:  # pre-created by someone else
        os.chown(mine, 65534, 65534)
        with pytest.raises(ConfigError, match="belongs to another user"):
            load_config(None)


def test_sqlite_sees_the_reader_connection_as_read_only(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    backlog(path, 500)
    r = open_reader(path)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        r.conn.execute("DELETE FROM events")
    r.close()
