"""The staff view's gate keeping that needs no session: a token bucket per client address
(a phone polling is a few requests a minute; a script hammering PINs or pages is slowed to
`rate` a second), a stricter one for sign-in attempts, and the count of every refusal by
status and reason, which /healthz shows and the log says once a minute at most."""

from __future__ import annotations

import ipaddress
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Final

MAX_CLIENTS: Final = 1024  # addresses remembered; the least recently seen forgotten first
SIGN_IN_RATE: Final = 0.5  # sign-in attempts a second per address, after a burst
SIGN_IN_BURST: Final = 10.0  # a name locks after 5 wrong PINs; this slows spraying across names


class Buckets:
    def __init__(self, rate: float, burst: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._b: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float:
        """0 when the request may go ahead, else the seconds until it may."""
        now = self.clock()
        level, at = self._b.pop(client, (self.burst, now))
        level = min(self.burst, level + (now - at) * self.rate)
        if level >= 1.0:
            self._b[client] = (level - 1.0, now)
            wait = 0.0
        else:
            self._b[client] = (level, now)
            wait = (1.0 - level) / self.rate
        while len(self._b) > MAX_CLIENTS:
            self._b.popitem(last=False)
        return wait


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        # 127.0.0.2 is loopback to the kernel but the view bound to it stands for the LAN
        # (tests, and a second address given to the view on purpose): only the usual ones
        return ipaddress.ip_address(host.split("%")[0]) in (
            ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
    except ValueError:
        return False


class Refusals:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, status: int, why: str) -> None:
        self.counts[f"{status} {why}"] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())
