"""RSSI smoothing and the log-distance path-loss model.

RSSI from a phone or beacon is noisy (multipath, body shadowing) and has spikes. A short median
window rejects outliers; a 1-euro filter then smooths slowly moving values strongly while still
following a real step (someone walking up to the shelf) quickly.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from statistics import median


def _median(values: deque[float]) -> float:
    """statistics.median without its generality (this runs for every advert)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


class OneEuroFilter:
    """Casiez et al.'s 1-euro filter: an exponential smoother whose cutoff frequency rises with
    the speed of the signal. Times in seconds; irregular sampling is fine."""

    def __init__(self, min_cutoff: float = 0.1, beta: float = 0.01, d_cutoff: float = 1.0) -> None:
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self._tau_d = 1.0 / (2 * math.pi * d_cutoff)
        self._x: float | None = None
        self._dx = 0.0
        self._t = 0.0

    def __call__(self, t: float, x: float) -> float:
        # alpha = 1 / (1 + tau / dt) with tau = 1 / (2 pi cutoff), written out: runs per advert
        if self._x is None:
            self._x, self._t = x, t
            return x
        dt = max(t - self._t, 1e-3)
        a_d = 1.0 / (1.0 + self._tau_d / dt)
        self._dx = a_d * (x - self._x) / dt + (1 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * abs(self._dx)
        a = 1.0 / (1.0 + 1.0 / (2 * math.pi * cutoff * dt))
        self._x = a * x + (1 - a) * self._x
        self._t = t
        return self._x


@dataclass
class Smoothed:
    rssi: float
    rejected: bool  # this sample was an outlier and did not move the estimate


class RssiSmoother:
    """Outlier rejection (distance from the median of the last samples) + 1-euro filter."""

    def __init__(self, window: int = 7, max_jump_db: float = 12.0, **filter_args: float) -> None:
        self._recent: deque[float] = deque(maxlen=window)
        self.max_jump_db = max_jump_db
        self._filter = OneEuroFilter(**filter_args)
        self._last = Smoothed(0.0, False)

    def update(self, t: float, rssi: float) -> Smoothed:
        """The smoothed value after this sample (the spread is asked for separately)."""
        recent = self._recent
        if len(recent) >= 3 and abs(rssi - _median(recent)) > self.max_jump_db:
            recent.append(rssi)  # remembered, so a real lasting change is accepted later
            self._last = Smoothed(self._last.rssi, True)
            return self._last
        recent.append(rssi)
        self._last = Smoothed(self._filter(t, rssi), False)
        return self._last

    def spread(self) -> float:
        """Robust spread (scaled median absolute deviation) of the recent raw samples, in dB.
        Computed only when asked: it is needed for reports, not for every advert."""
        recent = self._recent
        if len(recent) < 2:
            return 0.0
        mid = _median(recent)
        return 1.4826 * median(abs(r - mid) for r in recent)


def distance_m(rssi: float, tx_power_1m: float, path_loss_exponent: float = 2.0) -> float:
    """Log-distance model: rssi = tx_power_1m - 10 n log10(d)."""
    return float(10 ** ((tx_power_1m - rssi) / (10.0 * path_loss_exponent)))


def distance_with_uncertainty(
    rssi: float, spread_db: float, tx_power_1m: float, path_loss_exponent: float = 2.0
) -> tuple[float, float, float]:
    """(estimate, low, high) in metres: the spread of RSSI mapped through the model."""
    d = distance_m(rssi, tx_power_1m, path_loss_exponent)
    low = distance_m(rssi + spread_db, tx_power_1m, path_loss_exponent)
    high = distance_m(rssi - spread_db, tx_power_1m, path_loss_exponent)
    return d, low, high
