"""The store database (orders, consent, the link's cached documents) damaged while the agent
is stopped: the agent moves it aside and runs on a fresh one, instead of stopping at every
start (under systemd: a restart loop). The move is said: a status field, an upstream event,
a log line."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from agent.checkin import StoreDb
from agent.errors import ConfigError
from agent.outbox.dbfile import quarantine
from agent.storedb.filecheck import QUARANTINED_EVENT, check_at_start, problem_of
from tests.conftest import CLI, ROOT, AgentProcess


def damage_middle(path: Path) -> None:
    """Overwrite pages in the middle of the file, the header and schema left intact."""
    size = path.stat().st_size
    with path.open("r+b") as fh:
        for off in range(size * 2 // 5 // 4096 * 4096, size * 3 // 5, 4096 * 4):
            fh.seek(off)
            fh.write(os.urandom(4096))


def store_with_orders(path: Path, n: int = 3000) -> None:
    db = StoreDb(path)
    db.replace("orders", [{"order_id": f"O{i}", "code": f"C{i:05d}", "first_name": "Ann" * 20,
                           "status": "ready", "eta_min": 3, "store": "store-1"}
                          for i in range(n)])
    db.close()


def config(tmp_path: Path, store: Path) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""
[device]
store = "store-1"
id = "dev-1"

[outbox]
path = "{tmp_path / 'outbox.db'}"

[kiosk]
store_db = "{store}"

[mqtt]
url = ""

[metrics]
listen = ""

[bus]
socket = "{tmp_path / 'agent.sock'}"
""")
    return cfg


def test_a_store_db_overwritten_in_the_middle_is_moved_aside_and_the_agent_runs(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    store = tmp_path / "state" / "store.db"
    store_with_orders(store)
    damage_middle(store)
    assert problem_of(store) is not None  # what the agent stopped on before
    cfg = config(tmp_path, store)
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()  # the old agent exited here: "database disk image is malformed"

    part = agent.status()["store_db"]
    [moved] = part["quarantined"]
    assert Path(moved).name.startswith("store.db.corrupt-") and Path(moved).exists()
    assert "moved aside" in part["last_error"]
    assert problem_of(store) is None  # a fresh, intact file where the damaged one was
    # the store works again: orders can be imported with the agent running
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id,code,first_name,status\nA1,ABC123,Bea,ready\n")
    res = subprocess.run([*CLI, "orders", "import", str(orders), "--config", str(cfg)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    assert agent.stop() == 0

    db = sqlite3.connect(tmp_path / "outbox.db")
    bodies = [json.loads(b) for (b,) in db.execute("SELECT body FROM events")]
    db.close()
    notices = [b for b in bodies if b["type"] == QUARANTINED_EVENT]
    assert len(notices) == 1 and notices[0]["data"]["moved_to"] == moved
    assert "unusable" in agent.log.read_text()

    # the next start finds the fresh file intact: nothing moved again
    again = AgentProcess(cfg)
    agent_factory.append(again)
    again.start()
    assert again.status()["store_db"]["quarantined"] == []
    assert again.stop() == 0
    assert sorted(p.name for p in store.parent.glob("store.db.corrupt-*")) == [Path(moved).name]


def test_an_intact_or_missing_store_db_is_left_alone(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    assert check_at_start(store) is None and not store.exists()
    store_with_orders(store, 50)
    before = store.read_bytes()
    assert check_at_start(store) is None
    assert store.read_bytes() == before


def test_a_file_that_is_no_database_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    # the config file named as store_db by mistake: moving it aside (as a damaged database)
    # and making a database in its place destroyed it, and the next start crash-looped
    store = tmp_path / "notes.toml"
    content = b'[device]\nstore = "store-1"\n' * 300
    store.write_bytes(content)
    with pytest.raises(ConfigError, match=r"is not an o2o-edge database .*point \[kiosk\] "
                       r"store_db at a new file"):
        check_at_start(store)
    with pytest.raises(ConfigError):
        quarantine(store, key="[kiosk] store_db")
    assert store.read_bytes() == content and os.listdir(tmp_path) == ["notes.toml"]


def test_a_wiped_database_is_still_moved_aside(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    store.write_bytes(bytes(64 * 1024))  # zero-filled: a database whose pages were lost
    moved = check_at_start(store)
    assert moved is not None and not store.exists()
    assert moved.moved_to.read_bytes() == bytes(64 * 1024)
    assert moved.notice(1.0).type == QUARANTINED_EVENT


def test_run_refuses_a_store_db_that_holds_something_else_in_one_line(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("the shop's opening hours\n" * 100)
    before = notes.read_bytes()
    res = subprocess.run([*CLI, "run", "--config", str(config(tmp_path, notes))],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == (f"o2o-edge: {notes} is not an o2o-edge database (it holds "
                                  "something else); point [kiosk] store_db at a new file")
    assert notes.read_bytes() == before
    assert not [p for p in os.listdir(tmp_path) if p.startswith("notes.txt.")]


def test_damage_met_while_running_is_said_and_the_next_start_moves_the_file_aside(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    from agent.bus.client import BusClient
    from agent.errors import AgentError

    store = tmp_path / "state" / "store.db"
    store_with_orders(store)
    cfg = config(tmp_path, store)
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    assert agent.status()["store_db"] == {"quarantined": [], "last_error": ""}
    damage_middle(store)  # pages go bad under the running agent
    with BusClient(agent.socket, timeout=10) as bus:
        try:
            bus.request({"op": "queue"})  # reads every order: meets the damage
        except AgentError as exc:
            assert "could not answer" in str(exc)  # answered, not a dropped connection
        else:
            raise AssertionError("the queue was read from a damaged file")
    part = agent.status()["store_db"]
    assert "damaged while running" in part["last_error"]
    assert "restart the agent" in part["last_error"]
    assert Path(f"{store}.damaged").exists()  # for the next start
    assert agent.stop() == 0

    again = AgentProcess(cfg)
    agent_factory.append(again)
    again.start()
    [moved] = again.status()["store_db"]["quarantined"]
    assert Path(moved).exists() and not Path(f"{store}.damaged").exists()
    with BusClient(again.socket, timeout=10) as bus:
        assert bus.request({"op": "queue"})["queue"] == []  # a fresh file answers
    assert again.stop() == 0


def test_a_marked_file_is_moved_aside_whatever_its_check_says(tmp_path: Path) -> None:
    from agent.storedb.filecheck import mark_damaged

    store = tmp_path / "store.db"
    store_with_orders(store, 20)
    mark_damaged(store, "database disk image is malformed")
    assert problem_of(store) is None  # a quick check may see nothing wrong
    moved = check_at_start(store)
    assert moved is not None and "met while running" in moved.reason
    assert not store.exists() and not Path(f"{store}.damaged").exists()
    assert check_at_start(store) is None  # once
