"""Enter / exit / dwell per identity (a registered beacon or an opted-in app identifier).

An identity is "present" from its first sighting; it has left when it has not been heard for
`exit_after` = max(min_exit_s, interval_factor x its advertising interval), the interval being
learned from the gaps between sightings (an exponentially weighted median-ish average that
ignores long gaps, which are what an exit looks like).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.presence.rssi import RssiSmoother, distance_m, distance_with_uncertainty
from agent.presence.zones import ZoneClassifier


@dataclass
class PresenceConfig:
    path_loss_exponent: float = 2.0
    min_exit_s: float = 10.0
    interval_factor: float = 8.0
    initial_interval_s: float = 1.0
    immediate_m: float = 0.5
    near_m: float = 3.0
    zone_margin: float = 0.2
    zone_hold_s: float = 3.0
    # RSSI is taken at most this often per identity: a beacon at 10 Hz sends samples that
    # differ only by noise within a few hundred ms, and on a Pi with many fast advertisers
    # smoothing every one of them is most of the CPU the agent spends
    sample_interval_s: float = 0.25


@dataclass
class _Track:
    first_seen: float
    last_seen: float
    interval: float
    smoother: RssiSmoother
    zones: ZoneClassifier
    zone: str = ""
    sightings: int = 0
    last_sample: float = float("-inf")
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PresenceEvent:
    kind: str  # "enter", "zone", "exit"
    key: str
    time: float
    data: dict[str, Any]


_NOTHING: tuple[PresenceEvent, ...] = ()


class PresenceTracker:
    def __init__(self, config: PresenceConfig | None = None) -> None:
        self.cfg = config or PresenceConfig()
        self._tracks: dict[str, _Track] = {}

    def __len__(self) -> int:
        return len(self._tracks)

    def exit_after(self, key: str) -> float:
        tr = self._tracks[key]
        return max(self.cfg.min_exit_s, self.cfg.interval_factor * tr.interval)

    def sighting(
        self, t: float, key: str, rssi: int, tx_power_1m: int, extra: dict[str, Any] | None = None
    ) -> Sequence[PresenceEvent]:
        """A heard advert. `tx_power_1m` is the beacon's calibrated power at 1 m. The list
        of what happened is empty for almost every advert (and then not a new object)."""
        cfg = self.cfg
        tr = self._tracks.get(key)
        if tr is None:
            tr = _Track(t, t, cfg.initial_interval_s, RssiSmoother(),
                        ZoneClassifier(cfg.immediate_m, cfg.near_m, cfg.zone_margin,
                                       cfg.zone_hold_s),
                        extra=dict(extra or {}))
            self._tracks[key] = tr
        else:
            gap = t - tr.last_seen
            if 0 < gap < 4 * tr.interval:  # a long gap is a miss, not the interval
                tr.interval = 0.8 * tr.interval + 0.2 * gap
            tr.last_seen = t
        tr.sightings += 1
        if t - tr.last_sample < cfg.sample_interval_s:
            return _NOTHING  # heard (that is what presence needs); RSSI taken recently
        tr.last_sample = t
        sm = tr.smoother.update(t, rssi)
        d = distance_m(sm.rssi, tx_power_1m, cfg.path_loss_exponent)
        zone = tr.zones.update(d, t)
        if tr.sightings == 1 or zone != tr.zone:
            # the report (with its uncertainty) is built only when something happened
            _, low, high = distance_with_uncertainty(sm.rssi, tr.smoother.spread(),
                                                     tx_power_1m, cfg.path_loss_exponent)
            data = {"zone": zone, "distance_m": round(d, 2),
                    "distance_range_m": [round(low, 2), round(high, 2)],
                    "rssi": round(sm.rssi, 1), **tr.extra}
            kind = "enter" if tr.sightings == 1 else "zone"
            tr.zone = zone
            return (PresenceEvent(kind, key, t, data),)
        return _NOTHING

    def forget(self, key: str) -> int:
        """Drop what is known of an identity (erasure), without reporting an exit."""
        return 1 if self._tracks.pop(key, None) is not None else 0

    def tick(self, now: float) -> list[PresenceEvent]:
        """Exits of everything not heard for its exit time."""
        gone: list[PresenceEvent] = []
        for key in list(self._tracks):
            tr = self._tracks[key]
            if now - tr.last_seen > self.exit_after(key):
                gone.append(PresenceEvent("exit", key, tr.last_seen, {
                    "dwell_s": round(tr.last_seen - tr.first_seen, 1),
                    "last_zone": tr.zone, "sightings": tr.sightings, **tr.extra,
                }))
                del self._tracks[key]
        return gone
