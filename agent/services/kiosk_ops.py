"""The store operations the kiosk asks for over the bus: check-in, the pick-up queue, handing
an order over, and the day's KPIs. Each runs in one of the bus's worker threads and answers
with its reply type of the bus contract (agent/contracts/bus.py); the bus server adds `req`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from agent.contracts.bus import CheckinReply, HandoverReply, KpisReply, Op, QueueReply, Reply
from agent.kpi import now_day, summary

# A bus op's handler: the request in, the answer's fields out (agent/bus/server.py)
Handler = Callable[[dict[str, Any]], Reply]


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

    def ops(self) -> dict[str, Handler]:
        """The bus's further ops, by their name in the contract."""
        return {Op.CHECKIN: self.check_in, Op.QUEUE: self.queue, Op.HANDOVER: self.handover,
                Op.KPIS: self.kpis}

    def check_in(self, msg: dict[str, Any]) -> CheckinReply:
        req = msg.get("request")
        return CheckinReply(ok=True,
                            result=self._checkin.checkin(req if isinstance(req, dict) else {}))

    def queue(self, msg: dict[str, Any]) -> QueueReply:
        listed = self._checkin.queue(msg)  # rows bounded by "limit", with "total"
        return QueueReply(ok=True, queue=listed["queue"], total=listed["total"],
                          limit=listed["limit"])

    def handover(self, msg: dict[str, Any]) -> HandoverReply:
        return HandoverReply(ok=True, result=self._checkin.handover(str(msg.get("order"))))

    def kpis(self, msg: dict[str, Any]) -> KpisReply:
        self._kpis.flush()  # the roll-ups still in memory count too
        asked = msg.get("day")
        day = asked if isinstance(asked, int) else self._today()
        hourly = self._kpis.day(day)
        return KpisReply(ok=True, day=day, hourly=hourly, summary=summary(hourly))
