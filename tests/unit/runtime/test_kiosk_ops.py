"""The kiosk's bus operations, answered from the check-in service and the KPI roll-ups."""

from __future__ import annotations

from typing import Any

from agent.contracts.bus import Op
from agent.services.kiosk_ops import KioskOps


class FakeCheckin:
    def __init__(self) -> None:
        self.asked: list[Any] = []

    def checkin(self, req: dict[str, Any]) -> dict[str, Any]:
        self.asked.append(("checkin", req))
        return {"status": "ok"}

    def queue(self, req: dict[str, Any]) -> dict[str, Any]:
        self.asked.append(("queue", req))
        return {"queue": [], "total": 0, "limit": req.get("limit", 200)}

    def handover(self, order_id: str) -> dict[str, Any]:
        self.asked.append(("handover", order_id))
        return {"status": "handed-over"}


class FakeKpis:
    def __init__(self) -> None:
        self.flushes = 0
        self.days: list[int] = []

    def flush(self) -> int:
        self.flushes += 1
        return 0

    def day(self, day_start: int) -> dict[str, list[float]]:
        self.days.append(day_start)
        return {}


def test_the_ops_the_kiosk_asks_for() -> None:
    checkin, kpis = FakeCheckin(), FakeKpis()
    ops = KioskOps(checkin, kpis, today=lambda: 86400).ops()
    assert set(ops) == {"checkin", "queue", "handover", "kpis"}
    assert all(isinstance(op, Op) for op in ops)  # named by the bus contract
    # each answer is its reply type: "ok" and the fields the contract gives it
    assert ops["checkin"]({"request": {"kind": "pickup", "code": "A1"}}) == \
        {"ok": True, "result": {"status": "ok"}}
    assert ops["checkin"]({"request": "junk"}) == {"ok": True, "result": {"status": "ok"}}
    assert ops["queue"]({"limit": 5}) == {"ok": True, "queue": [], "total": 0, "limit": 5}
    assert ops["handover"]({"order": 42}) == \
        {"ok": True, "result": {"status": "handed-over"}}
    assert checkin.asked == [("checkin", {"kind": "pickup", "code": "A1"}), ("checkin", {}),
                             ("queue", {"limit": 5}), ("handover", "42")]


def test_kpis_include_what_is_not_written_out_yet_and_default_to_today() -> None:
    kpis = FakeKpis()
    ops = KioskOps(FakeCheckin(), kpis, today=lambda: 86400).ops()
    today = ops["kpis"]({})
    assert today["ok"] is True and today["day"] == 86400 and today["hourly"] == {}
    assert isinstance(today["summary"], dict)
    assert ops["kpis"]({"day": 0})["day"] == 0
    assert kpis.flushes == 2 and kpis.days == [86400, 0]
