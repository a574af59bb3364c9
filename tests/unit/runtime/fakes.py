"""Fakes shared by the services' unit tests: what they record is what the tests check."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any


class Recorder:
    """capture(event_type, data): the events a service records."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def __call__(self, event_type: str, data: Any) -> Future[list[Any]]:
        self.events.append((event_type, data))
        done: Future[list[Any]] = Future()
        done.set_result([])
        return done

    def of(self, event_type: str) -> list[Any]:
        return [d for t, d in self.events if t == event_type]


class FakeComponents:
    """The supervisor's spawn/stop/forget, keeping the tasks it was given."""

    def __init__(self) -> None:
        self.spawned: list[str] = []
        self.stopped: list[str] = []
        self.forgotten: list[str] = []
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def spawn(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        self.spawned.append(name)

        async def run() -> None:
            await factory()
        self.tasks[name] = asyncio.get_running_loop().create_task(run())

    async def stop(self, names: list[str] | None = None) -> None:
        for name in names or list(self.tasks):
            self.stopped.append(name)
            task = self.tasks.pop(name, None)
            if task is not None:
                task.cancel()

    def forget(self, name: str) -> None:
        self.forgotten.append(name)


class FakeRestarter:
    def __init__(self, running: bool = True) -> None:
        self.restarts = 0
        self._running = running

    @property
    def running(self) -> bool:
        return self._running

    def restart_soon(self) -> None:
        self.restarts += 1
