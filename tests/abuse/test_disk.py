"""The disk as a hostile input: a real agent on a private tmpfs filled to the last byte, and
an outbox file damaged while the agent is stopped or running.

What a user relies on: the agent starts, serves the bus and drains its backlog upstream; new
events are refused or dropped only by the stated policy (oldest lowest-priority first, never
above the new events' priority), counted; `outbox stats` and `outbox export` read the buffer
with the agent running or stopped; a damaged file is moved aside and capture goes on.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.envelope import make_pending
from agent.errors import AgentError, ConfigError, Reason
from agent.outbox import OutboxReader, OutboxWriter
from agent.outbox.dbfile import quarantine
from simulators.brokers import PrivateBroker
from tests.abuse.conftest import ABUSE
from tests.conftest import CLI, ROOT, AgentProcess, emit_lines, wait_for
from tests.integration.conftest import Subscriber
from tests.tmpfs import fill, free_bytes, small_tmpfs

TOPIC = "o2o/v1/store-1/dev-1/events"


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", 40) as d:
        yield d


def config(tmp_path: Path, outbox: Path, url: str) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""
[device]
store = "store-1"
id = "dev-1"

[outbox]
path = "{outbox}"
reserve_mb = 1

[mqtt]
url = "{url}"
backoff_min_s = 0.1
backoff_max_s = 1.0

[bus]
socket = "{tmp_path / 'agent.sock'}"
""")
    return cfg


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def backlog(outbox: Path, n: int, pad: int = 150) -> list[str]:
    """What an earlier run left: `n` priority-5 events, and the disk reserve it took."""
    w = OutboxWriter(outbox, max_bytes=256 << 20, ttl_s=1e6, source="o2o-edge://store-1/dev-1",
                     bootid="EARLIER", reserve_bytes=1 << 20)
    w.start()
    ids: list[str] = []
    for k in range(0, n, 500):
        evs = [make_pending("o2o.ble.presence", {"pad": "p" * pad, "i": k + i}, time.time(), 5)
               for i in range(500)]
        ids += [c.id for c in w.submit(evs).result(30)]
    w.stop()
    return ids


def damage_middle(path: Path) -> None:
    """Overwrite a few pages in the middle of the file, the header and schema left intact."""
    size = path.stat().st_size
    with path.open("r+b") as fh:
        for off in range(size * 2 // 5 // 4096 * 4096, size * 3 // 5, 4096 * 8):
            fh.seek(off)
            fh.write(os.urandom(4096))


def test_the_agent_starts_on_a_full_disk_keeps_check_ins_drains_and_the_cli_reads(
        tmp_path: Path, disk: Path, mosquitto: PrivateBroker, subscribers: list[Subscriber],
        agent_factory: list[AgentProcess]) -> None:
    outbox = disk / "outbox.db"
    ids = backlog(outbox, 30_000)
    sub = Subscriber(mosquitto.url, TOPIC, "collector")
    subscribers.append(sub)
    assert sub.connected.wait(15)
    mosquitto.stop()  # upstream away at first; the collector's session is kept
    fill(disk)
    assert free_bytes(disk) == 0
    cfg = config(tmp_path, outbox, mosquitto.url)
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()  # before: "disk I/O error" at the outbox's first pragma, exit 1, crash loop

    # check-ins on the full disk are kept: older priority-5 events make room, counted
    checkins = emit_lines(cfg, [json.dumps({"type": "o2o.kiosk.checkin", "data": {"order": i}})
                                for i in range(50)])
    assert len(checkins) == 50
    out = agent.status()["outbox"]
    dropped = out["dropped_this_boot"]
    assert dropped.get("disk_full", 0) > 0 and not any(k.startswith("refused") for k in dropped)
    assert out["reserve"]["releases"] == 1

    # read-only tools beside the running agent, on the full disk
    res = cli("outbox", "stats", "--json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["by_priority"]["9"] >= 50
    res = cli("outbox", "export", "--config", str(cfg), "-o", str(tmp_path / "running.jsonl"))
    assert res.returncode == 0, res.stderr
    exported = {json.loads(line)["id"]
                for line in (tmp_path / "running.jsonl").read_text().splitlines()}
    assert set(checkins) <= exported

    # upstream back: the whole backlog leaves, deleting rows frees pages for what comes
    t0 = time.monotonic()
    mosquitto.start()
    wait_for(lambda: agent.status()["outbox"]["depth"] == 0, 120,
             what=lambda: f"the backlog drained ({agent.status()['outbox']}; {sub.health()})")
    elapsed = time.monotonic() - t0
    dropped_n = agent.status()["outbox"]["dropped_this_boot"]["disk_full"]
    # every backlog event not dropped (counted) for the check-ins reaches the collector
    wait_for(lambda: len(set(ids) - sub.unique()) == dropped_n, 60,
             what=lambda: f"{len(set(ids) - sub.unique())} missing, {dropped_n} dropped; "
                          f"{sub.health()}")
    assert set(checkins) <= sub.unique()
    lost = set(ids) - sub.unique()
    print(f"full-disk drain: {len(ids) - len(lost)} events upstream in {elapsed:.1f} s "
          f"({(len(ids) - len(lost)) / elapsed:.0f}/s), {len(lost)} dropped for check-ins")
    assert agent.stop() == 0

    # and with the agent stopped, the disk full again (its write-ahead log was given back)
    fill(disk, "filler2")
    assert free_bytes(disk) == 0
    res = cli("outbox", "stats", "--json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    depth = json.loads(res.stdout)["depth"]
    assert depth < 5  # what the stop itself reported
    res = cli("outbox", "export", "--config", str(cfg), "-o", str(tmp_path / "stopped.jsonl"))
    assert res.returncode == 0 and f"exported {depth} events" in res.stderr, res.stderr


def test_without_a_reserve_the_agent_starts_refuses_by_policy_and_opens_once_freed(
        tmp_path: Path, disk: Path, agent_factory: list[AgentProcess]) -> None:
    """No reserve left to give (an earlier full disk took it): the agent still starts and
    serves the bus, says why events are refused, and keeps them once there is room."""
    outbox = disk / "outbox.db"
    backlog(outbox, 2000)
    (disk / "outbox.db.reserve").unlink()
    filler = fill(disk)
    cfg = config(tmp_path, outbox, "")
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()  # before: exit 1, "cannot open outbox ...: disk I/O error"
    out = agent.status()["outbox"]
    assert "error" in out  # the buffer cannot be read yet: said, status still answers
    res = subprocess.run([*CLI, "emit", "--config", str(cfg), "--type", "o2o.kiosk.checkin",
                          "--data", "{}"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode != 0 and "free disk space" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert agent.status()["outbox"]["dropped_this_boot"]["refused_disk_full"] >= 1
    filler.unlink()
    (new,) = emit_lines(cfg, [json.dumps({"type": "o2o.kiosk.checkin", "data": {"o": 1}})])
    wait_for(lambda: agent.status()["outbox"].get("depth", 0) >= 2001, 10,
             what=lambda: f"the outbox read again ({agent.status()['outbox']})")
    assert agent.stop() == 0
    res = cli("outbox", "export", "--config", str(cfg))
    assert new in {json.loads(line)["id"] for line in res.stdout.splitlines()}


def test_pages_damaged_after_a_clean_stop_are_found_at_start_and_capture_goes_on(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    outbox = tmp_path / "outbox.db"
    waiting = backlog(outbox, 5000)
    damage_middle(outbox)
    cfg = config(tmp_path, outbox, "")
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    out = agent.status()["outbox"]
    # before: not looked at after a clean stop (no -wal left), found only by a drain's read
    assert len(out["quarantined"]) == 1 and ".corrupt-" in out["quarantined"][0]
    assert "moved to" in out["last_error"]
    (new,) = emit_lines(cfg, [json.dumps({"type": "o2o.kiosk.checkin", "data": {"o": 1}})])
    assert agent.stop() == 0
    res = cli("outbox", "export", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert new in {e["id"] for e in events}
    assert "o2o.agent.outbox.quarantined" in {e["type"] for e in events}
    assert Path(out["quarantined"][0]).exists()
    # the backlog still readable in the file moved aside waits in the new one
    assert len(set(waiting) & {e["id"] for e in events}) > len(waiting) * 0.8


def test_damage_met_by_the_drain_while_running_is_moved_aside_and_capture_goes_on(
        tmp_path: Path, mosquitto: PrivateBroker, subscribers: list[Subscriber],
        agent_factory: list[AgentProcess]) -> None:
    outbox = tmp_path / "outbox.db"
    waiting = backlog(outbox, 5000)
    sub = Subscriber(mosquitto.url, TOPIC, "collector")
    subscribers.append(sub)
    assert sub.connected.wait(15)
    mosquitto.stop()
    cfg = config(tmp_path, outbox, mosquitto.url)
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()  # the start's check reads a sound file
    damage_middle(outbox)  # then pages go bad under the running agent
    mosquitto.start()  # the drain reads them
    wait_for(lambda: agent.status()["outbox"]["quarantined"], 60,
             what=lambda: f"the damaged outbox moved aside ({agent.status()['outbox']})")
    out = agent.status()["outbox"]
    assert "a reader met" in out["last_error"] and "malformed" in out["last_error"]
    (new,) = emit_lines(cfg, [json.dumps({"type": "o2o.kiosk.checkin", "data": {"o": 2}})])
    wait_for(lambda: new in sub.unique(), 60,
             what=lambda: f"the check-in upstream ({agent.status()['uplink']}; {sub.health()})")
    # what still read back in the damaged file went on upstream from the new one
    wait_for(lambda: len(set(waiting) & sub.unique()) > len(waiting) * 0.8, 60,
             what=lambda: f"{len(set(waiting) & sub.unique())} of the backlog upstream")
    assert agent.stop() == 0


TEST_PRIORITIES = (2, 5, 7, 9)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "small", 12) as d:
        yield d


@ABUSE
@given(earlier=st.lists(st.tuples(st.sampled_from(TEST_PRIORITIES), st.integers(1, 2000)),
                       min_size=1, max_size=4),
       left_kib=st.integers(0, 2048),
       batches=st.lists(st.tuples(st.sampled_from(TEST_PRIORITIES), st.integers(1, 400),
                                  st.integers(0, 2000)), min_size=1, max_size=6))
def test_full_disk_policy_holds_for_any_mix_of_priorities_and_sizes(
        small_disk: Path, earlier: list[tuple[int, int]], left_kib: int,
        batches: list[tuple[int, int, int]]) -> None:
    """Whatever arrives on a nearly full disk, each event is kept, dropped (counted by type)
    or refused (counted, OUTBOX_FULL, nothing else); a drop of priority q happens only when
    nothing below q that was there before is left."""
    for f in small_disk.iterdir():
        f.unlink()
    path = small_disk / "outbox.db"
    w = OutboxWriter(path, max_bytes=256 << 20, ttl_s=1e6, source="o2o-edge://s/d",
                     bootid="P")
    w.start()
    committed: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    try:
        for prio, n in earlier:  # a backlog left waiting before the disk filled up
            etype = f"o2o.test.p{prio}"
            evs = [make_pending(etype, {"i": i}, time.time(), prio) for i in range(n)]
            committed[etype] += len(w.submit(evs).result(30))
        filler = fill(small_disk)
        os.truncate(filler, max(0, filler.stat().st_size - left_kib * 1024))
        for prio, n, pad in batches:
            etype = f"o2o.test.p{prio}"
            before_drops = Counter(w.drops.by_type)
            before = _remaining_by_priority(path)
            evs = [make_pending(etype, {"pad": "z" * pad, "i": i}, time.time(), prio)
                   for i in range(n)]
            kept = 0
            try:
                kept = len(w.submit(evs).result(30))
            except AgentError as exc:
                assert exc.reason is Reason.OUTBOX_FULL, exc
                refused[etype] += n
            committed[etype] += kept
            dropped = Counter(w.drops.by_type) - before_drops
            dropped[etype] -= 0 if kept else n  # a refusal is counted by type as well
            after = _remaining_by_priority(path)
            after[prio] = after.get(prio, 0) - kept  # what this batch added
            for t, k in dropped.items():
                if k > 0 and t.startswith("o2o.test.p"):
                    q = int(t.removeprefix("o2o.test.p"))
                    assert not any(after.get(low, 0) > 0 and before.get(low, 0) > 0
                                   for low in TEST_PRIORITIES if low < q), (t, before, after)
    finally:
        w.stop()
    left = _remaining_by_type(path)
    for t in set(committed) | set(refused):
        assert committed[t] + refused[t] == left.get(t, 0) + w.drops.by_type[t], t


def _remaining_by_type(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return dict(db.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall())


def _remaining_by_priority(path: Path) -> dict[int, int]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return dict(db.execute("SELECT priority, count(*) FROM events "
                               "WHERE type LIKE 'o2o.test.%' GROUP BY priority").fetchall())


# --- a small dedicated partition -------------------------------------------------------------

def _small_writer(path: Path, bootid: str = "B") -> OutboxWriter:
    w = OutboxWriter(path, max_bytes=1 << 20, ttl_s=1e6, source="o2o-edge://store-1/dev-1",
                     bootid=bootid, reserve_bytes=0)
    w.start()
    return w


def _emit(w: OutboxWriter, n: int, priority: int = 5, pad: int = 200) -> list[str]:
    evs = [make_pending("o2o.ble.presence", {"pad": "p" * pad, "i": i}, time.time(), priority)
           for i in range(n)]
    return [c.id for c in w.submit(evs).result(30)]


def test_a_small_partition_takes_events_and_still_deletes_acknowledged_rows_when_full(
        tmp_path: Path) -> None:
    """An 8 MiB partition for a 1 MiB outbox: with 5.5 MiB free every event was refused as
    outbox-full (6 MiB were kept free for the write-ahead log, whatever the outbox's size).
    The headroom now follows what the outbox can hold; filled to the last byte, the disk
    still lets acknowledged rows go, and new events take their room."""
    with small_tmpfs(tmp_path / "part", 8) as part:
        (part / "other").write_bytes(b"\0" * (free_bytes(part) - (5 << 20) - (512 << 10)))
        print(f"free before: {free_bytes(part) / (1 << 20):.2f} MiB")
        w = _small_writer(part / "outbox.db")
        try:
            for _ in range(20):  # 3.5 MB of events: the oldest go by the quota, counted
                _emit(w, 500)
            assert "refused_disk_full" not in w.drops.count and w.drops.count["quota"] > 0
            assert w.last_error == ""
            fill(part)
            assert free_bytes(part) == 0
            kept = 0  # a full disk: new events take the pages of dropped ones, or are refused
            with contextlib.suppress(AgentError):
                for _ in range(10):
                    kept += len(_emit(w, 200))
            r = OutboxReader(part / "outbox.db")
            try:
                rows = r.fetch(None, 100_000)
                w.ack(w.generation, [row.n for row in rows])
                wait_for(lambda: not r.fetch(None, 10), 20, what="acknowledged rows deleted")
            finally:
                r.close()
            print(f"full disk: {kept} events kept after the fill, {len(rows)} acknowledged "
                  f"and deleted; drops {dict(w.drops.count)}")
            assert len(_emit(w, 500)) == 500  # the deleted rows' pages take new events
        finally:
            w.stop()


def test_last_error_clears_once_events_are_stored_again(tmp_path: Path) -> None:
    """The attacker's check: after the disk was full and space was freed, emits worked again
    but status still said "disk is full" (outbox.last_error)."""
    with small_tmpfs(tmp_path / "part", 8) as part:
        path = part / "outbox.db"
        w = _small_writer(path)
        _emit(w, 100)
        w.stop()
        filler = fill(part)
        w = _small_writer(path, bootid="B2")
        try:
            with pytest.raises(AgentError) as info:
                _emit(w, 1, 9)
            assert info.value.reason is Reason.OUTBOX_FULL
            assert "disk is full" in w.last_error
            filler.unlink()
            assert len(_emit(w, 1, 9)) == 1
            assert w.last_error == ""
        finally:
            w.stop()


# --- a file that is no database ----------------------------------------------------------------

def test_an_outbox_path_holding_something_else_is_refused_never_moved(tmp_path: Path) -> None:
    """`[outbox] path` naming a file of the operator's (the config file, notes): the damage
    path moved it aside as `<name>.corrupt-<time>` and made a database in its place. Only a
    file that is an SQLite database, or a wiped (zero-filled) one, is ever moved aside."""
    notes = tmp_path / "notes.txt"
    notes.write_text("the shop's opening hours\n" * 100)
    before = notes.read_bytes()
    cfg = config(tmp_path, notes, "")
    cfg.write_text(cfg.read_text() + '\n[metrics]\nlisten = ""\n')
    res = cli("run", "--config", str(cfg))
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == (f"o2o-edge: {notes} is not an o2o-edge database (it holds "
                                  "something else); point [outbox] path at a new file")
    with pytest.raises(ConfigError):  # the writer and the damage path refuse it the same way
        OutboxWriter(notes, max_bytes=1 << 20, ttl_s=1e6, source="o2o-edge://s/d",
                     bootid="B", reserve_bytes=0).start()
    with pytest.raises(ConfigError):
        quarantine(notes)
    assert notes.read_bytes() == before
    assert not [p for p in os.listdir(tmp_path) if p.startswith("notes.txt")
                and p != "notes.txt"]
    # a wiped file (zeros where the header was) is damage: moved aside, a fresh one made
    wiped = tmp_path / "wiped.db"
    wiped.write_bytes(bytes(32 * 1024))
    w = OutboxWriter(wiped, max_bytes=1 << 20, ttl_s=1e6, source="o2o-edge://s/d",
                     bootid="B", reserve_bytes=0)
    w.start()
    try:
        assert len(w.quarantined) == 1 and Path(w.quarantined[0]).read_bytes() == bytes(32 * 1024)
    finally:
        w.stop()
