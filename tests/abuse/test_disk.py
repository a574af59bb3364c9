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
from agent.errors import AgentError, Reason
from agent.outbox import OutboxWriter
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
