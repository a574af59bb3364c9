"""Today's numbers for staff mode, counted from the events the kiosk sees on the bus:
taps, scans, check-ins, content views and hand-offs (the conversion), survey scores, per
hour for the sparklines. They start when the kiosk starts; the agent's own roll-ups that
survive restarts come with the store link."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

COUNTED = {"o2o.nfc.tap": "taps", "o2o.qr.scan": "scans", "o2o.kiosk.checkin": "checkins",
           "o2o.kiosk.view": "views", "o2o.kiosk.handoff": "handoffs"}


class TodayStats:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._reset()

    def _reset(self) -> None:
        self.day = self._day()
        self.hourly: dict[str, list[int]] = {k: [0] * 24 for k in COUNTED.values()}
        self.scores: list[int] = []
        self.outcomes: Counter[str] = Counter()

    def _day(self) -> int:
        return int(self.clock() // 86400)

    def add(self, event: dict[str, Any]) -> None:
        if self._day() != self.day:
            self._reset()  # a new day starts from zero
        kind = COUNTED.get(str(event.get("type")))
        raw = event.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        hour = time.localtime(self.clock()).tm_hour
        if kind is not None:
            self.hourly[kind][hour] += 1
        if event.get("type") == "o2o.kiosk.checkin":
            self.outcomes[str(data.get("outcome"))] += 1
        if event.get("type") == "o2o.kiosk.survey" and isinstance(data.get("score"), int):
            self.scores.append(data["score"])

    def total(self, kind: str) -> int:
        return sum(self.hourly[kind])

    def conversion(self) -> float | None:
        views = self.total("views")
        return round(self.total("handoffs") / views, 2) if views else None

    def survey_average(self) -> float | None:
        return round(sum(self.scores) / len(self.scores), 1) if self.scores else None
