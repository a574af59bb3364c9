"""Driving the fake BlueZ from blocking code (a test that runs the agent as a child process,
a scenario script) and playing adverts into it in real time.

`FakeBlueZThread` serves a `FakeBlueZ` from its own thread and event loop. `play()` sends a
time-ordered stream of `Advert`s (a capture file, the store floor model) so that they arrive
at the pace they carry: the first advert's time is "now".
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

from drivers.ble.capture import Advert
from simulators.fake_bluez import FakeBlueZ

T = TypeVar("T")


class FakeBlueZThread:
    def __init__(self, bus_address: str, **fake_args: Any) -> None:
        self.fake = FakeBlueZ(bus_address, **fake_args)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-bluez",
                                        daemon=True)

    def __enter__(self) -> FakeBlueZThread:
        self._thread.start()
        self.run(self.fake.start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.run(self.fake.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the fake lives on (coroutines that touch it run there)."""
        return self._loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 60) -> T:
        """Run a coroutine on the fake's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Call a plain function of the fake on its loop (the fake is not thread-safe)."""
        async def once() -> T:
            return fn(*args)

        return self.run(once())


async def play(fake: FakeBlueZ, adverts: Iterable[Advert], origin: float | None = None,
               speed: float = 1.0) -> tuple[float, int]:
    """Advertise each advert at its own time: `origin` (default: the first advert's time) is
    now, later times follow at `speed`. Returns (the wall-clock time `origin` was mapped to,
    the number of adverts somebody could hear)."""
    start_wall = time.time()
    start_mono = time.monotonic()
    sent = 0
    for adv in adverts:
        t = adv.t or 0.0
        if origin is None:
            origin = t
        delay = (t - origin) / speed - (time.monotonic() - start_mono)
        if delay > 0:
            await asyncio.sleep(delay)
        if fake.advertise(adv.address, adv.rssi, adv.manufacturer_data, adv.service_data):
            sent += 1
    return start_wall, sent
