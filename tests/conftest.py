"""Shared fixtures: isolated state/runtime dirs, a running agent, private brokers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "agent.cli.main"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked slow (soaks, long broker runs) only run when asked for with -m slow."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="a long run, not in the default suite: "
                                   "python3 dev.py test -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may read /etc/o2o-edge or the user's state, or leak O2O_EDGE_* settings."""
    for key in list(os.environ):
        if key.startswith("O2O_EDGE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))


def write_config(path: Path, *, url: str, protocol: str = "5", extra: str = "",
                 device: str = "dev-1") -> Path:
    path.write_text(
        f"""
[device]
store = "store-1"
id = "{device}"

[outbox]
path = "{path.parent / 'outbox.db'}"

[mqtt]
url = "{url}"
protocol = "{protocol}"
backoff_min_s = 0.1
backoff_max_s = 1.0
{extra}

[bus]
socket = "{path.parent / 'agent.sock'}"
"""
    )
    return path


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05, what="") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    if callable(what):
        what = what()
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


def emit_lines(cfg: Path, lines: list[str]) -> list[str]:
    """`o2o-edge emit` with JSON lines on stdin; returns the committed ids."""
    res = subprocess.run([*CLI, "emit", "--config", str(cfg)], input="\n".join(lines),
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


@contextlib.contextmanager
def agent_in_thread(cfg: Any) -> Iterator[tuple[Any, asyncio.AbstractEventLoop]]:
    """The agent in this process on an event loop of its own thread (to block its loop or
    call its handlers on it); stopped and joined on the way out."""
    from agent.daemon import Agent

    agent = Agent(cfg)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    runner = threading.Thread(target=lambda: loop.run_until_complete(agent.run(stop)),
                              daemon=True)
    runner.start()
    try:
        yield agent, loop
    finally:
        loop.call_soon_threadsafe(stop.set)
        runner.join(15)
        loop.close()


class AgentProcess:
    """`o2o-edge run` as a real child process."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.socket = config.parent / "agent.sock"
        self.log = config.parent / "agent.log"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*CLI, "run", "--config", str(self.config)], stdout=log,
                stderr=subprocess.STDOUT, cwd=ROOT,
                env={**os.environ, **self.env} if self.env else None,
            )
        from agent.bus.client import BusClient
        from agent.errors import AgentError

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited: {self.log.read_text()[-3000:]}")
            try:
                with BusClient(self.socket, timeout=2) as c:
                    c.request({"op": "ping"})
                return True
            except (AgentError, OSError):
                return False

        wait_for(up, 30, what="agent bus")

    def status(self) -> dict:  # type: ignore[type-arg]
        from agent.bus.client import BusClient

        with BusClient(self.socket, timeout=10) as c:
            return c.status()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("agent did not stop on SIGTERM within 30s") from None
        return self.proc.returncode


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[list[AgentProcess]]:
    agents: list[AgentProcess] = []
    yield agents
    for a in agents:
        a.kill()


@contextlib.contextmanager
def throwaway_postgres(prefix: str) -> Iterator[str]:
    """The URL of a database of its own on the machine's PostgreSQL (127.0.0.1:5432, trust),
    dropped afterwards; the test is skipped, saying why, without psycopg or a server."""
    import uuid

    psycopg = pytest.importorskip("psycopg", reason="pip install psycopg[binary]")
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as c:
            c.execute(f"CREATE DATABASE {name}")
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 to test against ({exc})")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def need(program: str, package: str) -> str:
    path = shutil.which(program) or (f"/usr/sbin/{program}" if Path(f"/usr/sbin/{program}").exists() else None)
    if not path:
        pytest.skip(f"{program} not installed (apt-get install {package}); python3 dev.py test "
                    "installs it when run as root")
    return path
