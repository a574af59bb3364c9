"""Runs each component as an asyncio task, restarting it with backoff when it fails."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agent.contracts.status import ComponentHealth
from drivers.retry import Backoff

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0  # longest the agent waits for components on the way out
HEALTHY_AFTER_S = 30.0  # a component that ran this long has its backoff reset


@dataclass
class Health:
    state: str = "starting"
    last_error: str = ""
    restarts: int = 0
    since: float = 0.0


class Supervisor:
    def __init__(self, backoff_min_s: float = 0.5, backoff_max_s: float = 30.0) -> None:
        self.health: dict[str, Health] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._min = backoff_min_s
        self._max = backoff_max_s

    def spawn(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        self.health[name] = Health(since=time.time())
        self._tasks[name] = asyncio.create_task(self._keep(name, factory), name=name)

    async def _keep(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        h = self.health[name]
        backoff = Backoff(self._min, self._max)
        while True:
            started = time.monotonic()
            h.state, h.since = "running", time.time()
            try:
                await factory()
            except asyncio.CancelledError:
                h.state = "stopped"
                raise
            except Exception as exc:
                h.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("component %s failed", name)
            else:
                h.state, h.since = "finished", time.time()
                return
            if time.monotonic() - started > HEALTHY_AFTER_S:
                backoff.reset()
            delay = backoff.next_delay()
            h.state, h.since = "restarting", time.time()
            h.restarts += 1
            await asyncio.sleep(delay)

    async def stop(self, names: list[str] | None = None, timeout: float = STOP_TIMEOUT_S) -> None:
        """Cancel the components and wait for them, at most `timeout`: one that hangs in a
        driver call must not keep the agent (and systemd) waiting; it is named in the log."""
        targets = {n: t for n, t in self._tasks.items() if names is None or n in names}
        for t in targets.values():
            t.cancel()
        if not targets:
            return
        _, pending = await asyncio.wait(targets.values(), timeout=timeout)
        for name, t in targets.items():
            if t in pending:
                log.warning("component %s did not stop within %.0fs; leaving it behind",
                            name, timeout)

    def forget(self, name: str) -> None:
        """Drop a stopped component from the books (it was replaced or switched off)."""
        self._tasks.pop(name, None)
        self.health.pop(name, None)

    def snapshot(self) -> dict[str, ComponentHealth]:
        return {
            name: {"state": h.state, "last_error": h.last_error, "restarts": h.restarts,
                   "since": h.since}
            for name, h in self.health.items()
        }
