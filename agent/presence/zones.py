"""Proximity zones with hysteresis, so that a shopper standing on a boundary does not flap."""

from __future__ import annotations

IMMEDIATE = "immediate"
NEAR = "near"
FAR = "far"
_ORDER = (IMMEDIATE, NEAR, FAR)


class ZoneClassifier:
    """immediate < `immediate_m` <= near < `near_m` <= far. Leaving a zone needs the distance
    to pass its boundary by `margin` (a fraction: 0.2 = 20 %)."""

    def __init__(self, immediate_m: float = 0.5, near_m: float = 3.0, margin: float = 0.2) -> None:
        if not 0 < immediate_m < near_m:
            raise ValueError("zone boundaries must satisfy 0 < immediate_m < near_m")
        self.bounds = (immediate_m, near_m)
        self.margin = margin
        self.zone: str | None = None

    def _raw(self, d: float) -> str:
        if d < self.bounds[0]:
            return IMMEDIATE
        return NEAR if d < self.bounds[1] else FAR

    def update(self, distance: float) -> str:
        zone = self.zone
        # the common case first, without a call: still inside the current zone's bounds
        if zone == NEAR and self.bounds[0] <= distance < self.bounds[1]:
            return zone
        raw = self._raw(distance)
        if zone is None or raw == zone:
            self.zone = raw
            return raw
        current = _ORDER.index(zone)
        if _ORDER.index(raw) > current:  # moving away: must pass the zone's outer bound by margin
            if distance >= self.bounds[current] * (1 + self.margin):
                zone = raw
        elif distance < self.bounds[current - 1] * (1 - self.margin):  # closer: the inner bound
            zone = raw
        self.zone = zone
        return zone
