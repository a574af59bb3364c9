"""Each commit group of the outbox writer handed to every consumer on its own.

Runs on the writer's thread. A consumer that fails on an odd event is counted and logged, and
the others still get the whole group: the uplink and the kiosk's live stream come first."""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.outbox import Committed

log = logging.getLogger(__name__)

Consumer = Callable[[list[Committed]], object]


class CommitFanout:
    def __init__(self) -> None:
        self._consumers: list[tuple[str, Consumer]] = []
        self.failures: dict[str, int] = {}  # by consumer, for status

    def connect(self, name: str, consume: Consumer) -> None:
        """A consumer, in the order they are given each group. The writer is built with this
        fan-out as its hook before the consumers exist (the bus and the uplink need the
        writer); they are connected before the writer starts."""
        self._consumers.append((name, consume))

    def __call__(self, committed: list[Committed]) -> None:
        for name, consume in self._consumers:
            try:
                consume(committed)
            except Exception:
                n = self.failures[name] = self.failures.get(name, 0) + 1
                if n & (n - 1) == 0:  # 1st, 2nd, 4th, 8th...: a bug is seen, the log not flooded
                    log.exception("commit hook %s failed (%d times so far)", name, n)
