"""The service notification protocol on a NOTIFY_SOCKET made by the test: READY once the
outbox and the bus are up, WATCHDOG pings at half the interval, STOPPING on SIGTERM — and
no pings while the event loop is blocked or the outbox writer is dead."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.bus.client import BusClient
from agent.config import load_config
from tests.conftest import AgentProcess, agent_in_thread, write_config


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.got: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            for line in data.decode().splitlines():
                self.got.append((time.monotonic(), line))

    def lines(self, prefix: str) -> list[float]:
        return [t for t, line in list(self.got) if line.startswith(prefix)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    n = NotifySocket(tmp_path / "notify.sock")
    yield n
    n.close()


def _wait(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_ready_watchdog_and_stopping_from_the_agent_process(
        tmp_path: Path, notify: NotifySocket, agent_factory: list[AgentProcess]) -> None:
    cfg = write_config(tmp_path / "config.toml", url="")
    agent = AgentProcess(cfg, env={"NOTIFY_SOCKET": str(notify.path),
                                   "WATCHDOG_USEC": "400000"})
    agent_factory.append(agent)
    agent.start()
    _wait(lambda: notify.lines("READY=1"), 20, "READY=1")
    ready = notify.lines("READY=1")[0]
    # the bus answers by the time READY is sent
    with BusClient(tmp_path / "agent.sock") as bus:
        assert bus.request({"op": "ping"})["ok"]
    assert any(line.startswith("STATUS=running: store store-1") for _, line in notify.got)
    _wait(lambda: len(notify.lines("WATCHDOG=1")) >= 8, 10, "eight pings")
    pings = [t for t in notify.lines("WATCHDOG=1") if t >= ready]
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert 0.15 < sorted(gaps)[len(gaps) // 2] < 0.3  # half of WatchdogSec
    assert agent.stop() == 0
    assert notify.lines("STOPPING=1")


def test_no_pings_while_the_loop_is_blocked_or_the_writer_is_dead(
        tmp_path: Path, notify: NotifySocket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    cfg = load_config(str(write_config(tmp_path / "config.toml", url="")))
    with agent_in_thread(cfg) as (agent, loop):
        _wait(lambda: len(notify.lines("WATCHDOG=1")) >= 3, 20, "pings")
        loop.call_soon_threadsafe(time.sleep, 1.0)  # the event loop is stuck for a second
        blocked_at = time.monotonic()
        time.sleep(1.3)
        during = [t for t in notify.lines("WATCHDOG=1")
                  if blocked_at + 0.15 < t < blocked_at + 0.95]
        assert during == []
        _wait(lambda: notify.lines("WATCHDOG=1")[-1] > blocked_at + 1.0, 5, "pings again")
        # the outbox writer dies: the agent stops pinging and says why
        agent.writer.stop()
        dead_at = time.monotonic()
        time.sleep(0.8)
        assert not [t for t in notify.lines("WATCHDOG=1") if t > dead_at + 0.2]
        assert any("unhealthy: the outbox writer thread has stopped" in line
                   for _, line in notify.got)


def test_logs_to_journald_carry_the_priority(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess

    from tests.conftest import CLI, ROOT

    cfg = write_config(tmp_path / "config.toml", url="mqtt://127.0.0.1:9")
    proc = subprocess.Popen([*CLI, "run", "--config", str(cfg)], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "JOURNAL_STREAM": "8:12345"})
    _wait(lambda: (tmp_path / "agent.sock").exists(), 20, "agent up")
    time.sleep(1.0)  # let the uplink fail to connect once
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    lines = err.splitlines()
    assert any(line.startswith("<6>agent.daemon: agent ") and " up: store=store-1" in line
               for line in lines), err
    assert any(line.startswith("<6>agent.uplink.link: uplink: cannot reach broker")
               for line in lines), err
    assert all(line.startswith("<") for line in lines), err  # one record, one line
    # levels map to syslog priorities; a traceback stays on the record's one line
    from agent.cli.main import JournalFormatter

    try:
        raise ValueError("boom")
    except ValueError:
        import logging
        import sys

        rec = logging.LogRecord("agent.x", logging.WARNING, __file__, 1, "outbox %s", ("full",),
                                sys.exc_info())
    text = JournalFormatter().format(rec)
    assert text.startswith("<4>agent.x: outbox full | Traceback") and "\n" not in text
