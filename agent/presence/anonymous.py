"""Anonymous footfall: devices that did not opt in are only ever counted.

Addresses are replaced by a keyed hash (BLAKE2b) under a salt that lives only in memory and is
replaced at every UTC midnight: the same phone counts once within a day, cannot be followed
across days, and nothing that could identify it is stored or sent.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable

DWELL_BUCKETS_S = (60, 300, 900, 1800, 3600)  # upper bounds; beyond the last is "longer"


class DailySalt:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._day = -1
        self._salt = b""
        self._cache: dict[str, str] = {}  # today's pseudonyms; forgotten with the salt

    def current(self) -> bytes:
        day = int(self._clock() // 86400)
        if day != self._day:
            self._day = day
            self._salt = os.urandom(32)
            self._cache = {}
        return self._salt

    def pseudonym(self, address: str) -> str:
        salt = self.current()
        p = self._cache.get(address)
        if p is None:
            p = hashlib.blake2b(address.upper().encode(), key=salt, digest_size=8).hexdigest()
            if len(self._cache) < 100_000:
                self._cache[address] = p
        return p


class FootfallCounter:
    """Per-minute distinct devices and a dwell histogram, from pseudonyms only."""

    def __init__(self, salt: DailySalt, leave_after_s: float = 120.0) -> None:
        self.salt = salt
        self.leave_after_s = leave_after_s
        self._minute: int | None = None
        self._seen_this_minute: set[str] = set()
        self._visits: dict[str, tuple[float, float]] = {}  # pseudonym -> (first, last)
        self.dwell_histogram: Counter[str] = Counter()

    def sighting(self, t: float, address: str) -> dict[str, object] | None:
        """Count a device; returns the finished minute's summary when a minute rolls over."""
        summary = None
        minute = int(t // 60)
        if self._minute is not None and minute != self._minute:
            summary = self._summary(self._minute)
        if minute != self._minute:
            self._minute = minute
            self._seen_this_minute = set()
        p = self.salt.pseudonym(address)
        self._seen_this_minute.add(p)
        first, _ = self._visits.get(p, (t, t))
        self._visits[p] = (first, t)
        return summary

    def _summary(self, minute: int) -> dict[str, object]:
        return {"minute_start": minute * 60, "devices": len(self._seen_this_minute)}

    def close_visits(self, now: float) -> int:
        """Visits not seen for `leave_after_s` end and go into the dwell histogram."""
        ended = 0
        for p, (first, last) in list(self._visits.items()):
            if now - last > self.leave_after_s:
                dwell = last - first
                bucket = next((f"<{b}s" for b in DWELL_BUCKETS_S if dwell < b),
                              f">={DWELL_BUCKETS_S[-1]}s")
                self.dwell_histogram[bucket] += 1
                del self._visits[p]
                ended += 1
        return ended
