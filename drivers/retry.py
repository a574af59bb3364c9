"""Exponential backoff with full jitter: a fleet of stores reconnecting after a broker outage
spreads out instead of arriving all at once, and a reader or camera that keeps failing is not
hammered.

It lives in `drivers` because drivers own their retry and import nothing of the project; the
agent (uplink, supervisor) and the kiosk (its bus link) use the same one from here."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, base_s: float, cap_s: float, rng: random.Random | None = None) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return self._rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        self.attempt = 0
