"""The agent's event loop and stop event, as the services reach them from any thread.

Both exist only once the agent runs: the root binds them then, and until it has, asking for a
restart or for something to run later does nothing (nothing is running to restart)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

RESTART_DELAY_S = 0.5  # the answer to a command that asked for the restart gets out first


class LoopControl:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        """The loop the agent runs on and the event that stops it (Agent.run)."""
        self._loop, self._stop = loop, stop

    @property
    def running(self) -> bool:
        return self._loop is not None and not self._loop.is_closed()

    def later(self, delay: float, fn: Callable[[], object]) -> None:
        """Run fn on the loop after delay seconds; callable from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.call_later, delay, fn)

    def restart_soon(self) -> None:
        """A clean stop; systemd (Restart=always) starts the agent again."""
        stop = self._stop
        if stop is not None:
            self.later(RESTART_DELAY_S, stop.set)
