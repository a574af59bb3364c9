"""Today's numbers for staff mode, counted from the events the kiosk sees on the bus:
taps, scans, check-ins, content views and hand-offs (the conversion), survey scores, per
hour for the sparklines. They start when the kiosk starts; the agent's own roll-ups that
survive restarts come with the store link."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Final

from agent.contracts import events as ev

COUNTED = {ev.NFC_TAP: "taps", ev.QR_SCAN: "scans", ev.KIOSK_CHECKIN: "checkins",
           ev.KIOSK_VIEW: "views", ev.KIOSK_HANDOFF: "handoffs"}
OUTCOMES_MAX: Final = 32  # distinct check-in outcomes counted: the agent has about a dozen
SCORE_MAX: Final = 10  # the top of the 0-10 scale; anything else is no survey answer


class TodayStats:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._reset()

    def _reset(self) -> None:
        self.day = self._day()
        self.hourly: dict[str, list[int]] = {k: [0] * 24 for k in COUNTED.values()}
        self.answers = 0  # survey answers and their sum: a count, not a list that grows
        self.score_sum = 0
        self.outcomes: Counter[str] = Counter()

    def _day(self) -> int:
        return int(self.clock() // 86400)

    def add(self, event: Mapping[str, Any]) -> None:
        if self._day() != self.day:
            self._reset()  # a new day starts from zero
        kind = COUNTED.get(str(event.get("type")))
        raw = event.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        hour = time.localtime(self.clock()).tm_hour
        if kind == "views" and data.get("personalised") is True:
            kind = None  # a personal offer on the home screen: no content viewed (as the KPIs)
        if kind is not None:
            self.hourly[kind][hour] += 1
        if event.get("type") == ev.KIOSK_CHECKIN:
            outcome = str(data.get("outcome"))[:40]
            if outcome in self.outcomes or len(self.outcomes) < OUTCOMES_MAX:
                self.outcomes[outcome] += 1
        score = data.get("score")
        if event.get("type") == ev.KIOSK_SURVEY and isinstance(score, int) and \
                not isinstance(score, bool) and 0 <= score <= SCORE_MAX:
            self.answers += 1
            self.score_sum += score

    def total(self, kind: str) -> int:
        return sum(self.hourly[kind])

    def conversion(self) -> float | None:
        views = self.total("views")
        return round(self.total("handoffs") / views, 2) if views else None

    def survey_average(self) -> float | None:
        return round(self.score_sum / self.answers, 1) if self.answers else None
