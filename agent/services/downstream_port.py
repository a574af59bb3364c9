"""The uplink's downstream side, built before the store link it feeds.

The store link publishes commands' answers and asks for content files through the uplink, and
the uplink hands the store link every downstream message: each needs the other at
construction. The uplink is made first, with this port as its handler; the store link, made
with the uplink, is plugged in once, before anything runs."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes, str, bytes], Awaitable[object]]


class DownstreamPort:
    def __init__(self) -> None:
        self._handler: Handler | None = None
        self.unplugged_drops = 0

    def plug(self, handler: Handler) -> None:
        if self._handler is not None:
            raise RuntimeError("the downstream port is already plugged")
        self._handler = handler

    async def handle(self, topic: str, raw: bytes, response: str, correlation: bytes) -> None:
        """One downstream message, on the loop (the uplink's inbox calls this)."""
        if self._handler is None:  # the root plugs the store link before the agent runs
            self.unplugged_drops += 1
            log.warning("downstream message on %s dropped: nothing takes it", topic[:200])
            return
        await self._handler(topic, raw, response, correlation)
