"""A wall clock that does not step.

NTP steps a Pi's clock when it corrects it (a stale clock after a power cut, a boot without
network): the wall clock jumps by minutes or days while the monotonic clock runs on. Timing
done on wall-clock times — "not heard for 5 minutes", "health due every hour" — then stops
for the length of a step back, or fires all at once after a step forward. `SteadyClock`
reads the wall clock once and then moves with the monotonic clock; `to_wall` maps one of its
times onto the wall clock as it is now, for reporting.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class SteadyClock:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self._mono = monotonic
        self._wall = wall
        self._offset = wall() - monotonic()

    def __call__(self) -> float:
        return self._mono() + self._offset

    def to_wall(self, t: float) -> float:
        return t + (self._wall() - self())
