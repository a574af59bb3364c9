"""The uplink over an outbox it cannot read, and over its own failures.

Measured before: one "database disk image is malformed" read ended the uplink for good — its
restarts failed ("cannot schedule new futures after shutdown"), each left its MQTT client
running (14 threads), and the clients with one id took the session from each other: 829
connects a minute. Here the agent runs in this process, so the reader can be made to fail.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.bus.client import BusClient
from agent.config import load_config
from agent.outbox.reader import OutboxReader
from agent.uplink import drain, feed
from tests.abuse.hostile_broker import HostileBroker
from tests.abuse.test_uplink import config
from tests.conftest import agent_in_thread, wait_for


@pytest.fixture
def broker() -> Iterator[HostileBroker]:
    with HostileBroker() as b:
        yield b


class DamagedReader(OutboxReader):
    broken = threading.Event()

    def fetch(self, after: Any, limit: int) -> Any:
        if self.broken.is_set():
            raise sqlite3.DatabaseError("database disk image is malformed")
        return super().fetch(after, limit)


def emit(sock: Path, n: int) -> set[str]:
    with BusClient(sock, timeout=30) as c:
        ids = c.emit([{"type": "o2o.kiosk.checkin", "data": {"i": i}} for i in range(n)])
    return {i for i in ids if i}


def test_outbox_read_errors_never_end_the_uplink(
    tmp_path: Path, broker: HostileBroker, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(feed, "OutboxReader", DamagedReader)
    DamagedReader.broken.set()
    cfg = load_config(str(config(tmp_path, broker.url)))
    with agent_in_thread(cfg) as (agent, _loop):
        sock = tmp_path / "agent.sock"
        wait_for(lambda: sock.exists() and agent.uplink.status()["state"] == "connected", 20)
        ids = emit(sock, 50)
        wait_for(lambda: agent.uplink.status()["read_errors"] >= 2, 10)
        threads0 = threading.active_count()
        errors0, t0 = agent.uplink.status()["read_errors"], time.monotonic()
        wait_for(lambda: time.monotonic() - t0 > 2.0, 5)
        st = agent.uplink.status()
        assert "cannot read the outbox" in st["last_error"] and "malformed" in st["last_error"]
        # backoff (0.05 s up to 0.5 s): a few tries a second, not a hot loop
        assert st["read_errors"] - errors0 <= 2.0 / 0.05
        # one connection all along, no thread per try, the drain never restarted
        assert st["state"] == "connected" and len(broker.connects) == 1
        assert threading.active_count() <= threads0
        assert agent.supervisor.snapshot()["uplink"]["restarts"] == 0
        DamagedReader.broken.clear()  # the file is repaired or replaced
        wait_for(lambda: ids <= broker.success_ids, 20, what="backlog sent after the repair")
        assert agent.uplink.status()["last_error"] == ""


def test_a_restarted_drain_leaves_no_client_behind(
    tmp_path: Path, broker: HostileBroker, monkeypatch: pytest.MonkeyPatch,
) -> None:
    failures = [RuntimeError("a bug"), RuntimeError("a bug"), RuntimeError("a bug")]
    fill = drain.Uplink._fill_window

    async def failing_fill(self: drain.Uplink) -> None:
        if failures:
            raise failures.pop()
        await fill(self)

    monkeypatch.setattr(drain.Uplink, "_fill_window", failing_fill)
    cfg = load_config(str(config(tmp_path, broker.url)))
    with agent_in_thread(cfg) as (agent, loop):
        sock = tmp_path / "agent.sock"
        wait_for(lambda: sock.exists(), 20)
        wait_for(lambda: agent.supervisor.snapshot()["uplink"]["restarts"] == 3, 30)
        ids = emit(sock, 20)
        wait_for(lambda: ids <= broker.success_ids, 20, what="events sent after restarts")
        # one connection per life of the drain, each closed before the next: no takeover
        assert len(broker.connects) <= 4

        async def links() -> list[str]:
            return [t.get_name() for t in asyncio.all_tasks() if t.get_name() == "mqtt-link"]

        # the connection of each earlier life ended with it; paho has no thread of its own
        assert asyncio.run_coroutine_threadsafe(links(), loop).result(10) == ["mqtt-link"]
        assert not [t for t in threading.enumerate() if t.name == "mqtt-link"]
