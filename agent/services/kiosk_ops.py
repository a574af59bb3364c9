"""The store operations the kiosk asks for over the bus: check-in, the pick-up queue, handing
an order over, and the day's KPIs. Each runs in one of the bus's worker threads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from agent.kpi import now_day, summary

Op = Callable[[dict[str, Any]], dict[str, Any]]


class Checkin(Protocol):
    """agent/checkin/service.py CheckinService."""

    def checkin(self, req: dict[str, Any]) -> dict[str, Any]: ...

    def queue(self, req: dict[str, Any]) -> dict[str, Any]: ...

    def handover(self, order_id: str) -> dict[str, Any]: ...


class DayKpis(Protocol):
    def flush(self) -> int: ...

    def day(self, day_start: int) -> dict[str, list[float]]: ...


class KioskOps:
    def __init__(self, checkin: Checkin, kpis: DayKpis,
                 today: Callable[[], int] = now_day) -> None:
        self._checkin = checkin
        self._kpis = kpis
        self._today = today

    def ops(self) -> dict[str, Op]:
        """The bus's further ops, by name."""
        return {"checkin": self.check_in, "queue": self.queue, "handover": self.handover,
                "kpis": self.kpis}

    def check_in(self, msg: dict[str, Any]) -> dict[str, Any]:
        req = msg.get("request")
        return {"result": self._checkin.checkin(req if isinstance(req, dict) else {})}

    def queue(self, msg: dict[str, Any]) -> dict[str, Any]:
        return self._checkin.queue(msg)  # rows bounded by "limit", with "total"

    def handover(self, msg: dict[str, Any]) -> dict[str, Any]:
        return {"result": self._checkin.handover(str(msg.get("order")))}

    def kpis(self, msg: dict[str, Any]) -> dict[str, Any]:
        self._kpis.flush()  # the roll-ups still in memory count too
        asked = msg.get("day")
        day = asked if isinstance(asked, int) else self._today()
        hourly = self._kpis.day(day)
        return {"day": day, "hourly": hourly, "summary": summary(hourly)}
