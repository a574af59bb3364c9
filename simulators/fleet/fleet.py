"""K virtual stores on one event loop: started spread over a ramp (or all at once, a herd),
fed events at a store-like rate by one ticker, drained, stopped.

The rate: the soak's generated store day (`o2o-edge soak --hours 2`) sent 43 events upstream
in two store hours, ~22 an hour or 0.006/s per device; the default here is that. Bounded: one ticker
for all stores, at most `WINDOW` messages in flight per store, every wait with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Final

from simulators.fleet.store import VirtualStore

STORE_RATE: Final = 0.006  # events/s per store during opening hours (see above)
TICK_S: Final = 1.0


class Fleet:
    def __init__(self, ports: list[int], k: int, *, v5_share: float = 0.5,
                 rate: float = STORE_RATE, seed: int = 1, prefix: str = "f",
                 backoff_max_s: float = 30.0,
                 port_of: Callable[[int], list[int]] | None = None) -> None:
        """`port_of(i)` gives store i its own ports (a share of stores behind a relay that
        can be cut); by default every store gets all of `ports`."""
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible simulation
        self.rate = rate
        self.stores = [
            VirtualStore(f"{prefix}{i:05d}", port_of(i) if port_of else ports,
                         v5=self.rng.random() < v5_share, backoff_max_s=backoff_max_s,
                         rng=random.Random(self.rng.random()))  # noqa: S311
            for i in range(k)]
        self._tasks: list[asyncio.Task[None]] = []
        self._ticker: asyncio.Task[None] | None = None

    async def start(self, ramp_s: float = 5.0) -> None:
        """Each store connects at a random moment within `ramp_s` (0: all at once)."""
        async def one(store: VirtualStore, delay: float) -> None:
            await asyncio.sleep(delay)
            await store.run()

        self._tasks = [asyncio.create_task(one(s, self.rng.uniform(0, ramp_s)))
                       for s in self.stores]

    def feed(self, on: bool = True) -> None:
        """Events at the store rate from now on (or no more)."""
        if on and self._ticker is None:
            self._ticker = asyncio.create_task(self._tick())
        elif not on and self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    async def _tick(self) -> None:
        per_tick = self.rate * TICK_S
        whole, part = int(per_tick), per_tick - int(per_tick)
        while True:
            for store in self.stores:
                n = whole + (1 if self.rng.random() < part else 0)
                if n:
                    store.commit(n)
            await asyncio.sleep(TICK_S)

    def backlog(self) -> int:
        return sum(s.backlog for s in self.stores)

    def connected(self) -> int:
        return sum(s.connected for s in self.stores)

    async def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> float:
        """Seconds until `predicate` holds; TimeoutError saying `what` after `timeout`."""
        began = time.monotonic()
        while not predicate():
            if time.monotonic() - began > timeout:
                raise TimeoutError(f"{what} after {timeout:.0f}s: {self.describe()}")
            await asyncio.sleep(0.2)
        return time.monotonic() - began

    async def drain(self, timeout: float) -> float:
        """Until every store's outbox is empty (every committed event PUBACKed)."""
        return await self.wait(lambda: self.backlog() == 0, timeout, "not drained")

    def describe(self) -> str:
        return (f"{len(self.stores)} stores, {self.connected()} connected, backlog "
                f"{self.backlog()}, committed {sum(s.stats.committed for s in self.stores)}, "
                f"acked {sum(s.stats.acked for s in self.stores)}")

    async def stop(self) -> None:
        self.feed(False)
        for store in self.stores:
            store.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 30)
