"""Proximity zones with hysteresis, so that a shopper standing on a boundary does not flap.

Two guards, because RSSI noise alone moves a distance estimate by +-20 % or more:
- a margin: leaving a zone needs the distance to pass the zone's bound by `margin`;
- a hold time: the new zone must be what the distance says for `hold_s` before it is taken.
"""

from __future__ import annotations

IMMEDIATE = "immediate"
NEAR = "near"
FAR = "far"
_ORDER = (IMMEDIATE, NEAR, FAR)


class ZoneClassifier:
    """immediate < `immediate_m` <= near < `near_m` <= far."""

    def __init__(self, immediate_m: float = 0.5, near_m: float = 3.0, margin: float = 0.2,
                 hold_s: float = 3.0) -> None:
        if not 0 < immediate_m < near_m:
            raise ValueError("zone boundaries must satisfy 0 < immediate_m < near_m")
        self.bounds = (immediate_m, near_m)
        self.margin = margin
        self.hold_s = hold_s
        self.zone: str | None = None
        self._candidate: str | None = None
        self._since = 0.0

    def _raw(self, d: float) -> str:
        if d < self.bounds[0]:
            return IMMEDIATE
        return NEAR if d < self.bounds[1] else FAR

    def _beyond_margin(self, zone: str, raw: str, distance: float) -> bool:
        current = _ORDER.index(zone)
        if _ORDER.index(raw) > current:  # moving away: past the zone's outer bound by margin
            return distance >= self.bounds[current] * (1 + self.margin)
        return distance < self.bounds[current - 1] * (1 - self.margin)  # closer: inner bound

    def update(self, distance: float, t: float = 0.0) -> str:
        """The zone after a distance estimate at time `t` (seconds)."""
        zone = self.zone
        # the common case first, without a call: still inside the current zone's bounds
        if zone == NEAR and self.bounds[0] <= distance < self.bounds[1]:
            self._candidate = None
            return zone
        raw = self._raw(distance)
        if zone is None:
            self.zone = raw  # the first estimate is taken as it is
            return raw
        if raw == zone or not self._beyond_margin(zone, raw, distance):
            self._candidate = None
            return zone
        if raw != self._candidate:
            self._candidate, self._since = raw, t
        if t - self._since >= self.hold_s:
            self.zone, self._candidate = raw, None
            return raw
        return zone
