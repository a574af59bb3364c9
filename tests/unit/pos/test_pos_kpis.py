"""The tills' KPIs: sales and their amount per currency, the average order value, the share of
visits that bought, refunds, and redemptions per campaign — from committed events."""

from __future__ import annotations

import json
from pathlib import Path

from agent.kpi import Kpis, metrics_of, summary


def body(data: dict[str, object]) -> str:
    return json.dumps({"data": data})


def test_a_day_of_sales(tmp_path: Path) -> None:
    kpis = Kpis(tmp_path / "store.db")
    at = 1_800_000_000.0
    day = int(at // 86400 * 86400)
    kpis.add_bodies([
        ("o2o.pos.sale", at, body({"total": 1250, "currency": "EUR", "visit": "v1"})),
        ("o2o.pos.sale", at, body({"total": 750, "currency": "EUR"})),
        ("o2o.pos.sale", at, body({"total": 300, "currency": "JPY"})),
        ("o2o.pos.refund", at, body({"total": 200, "currency": "EUR"})),
        ("o2o.offer.redeemed", at, body({"campaign": "spring"})),
        ("o2o.offer.redeemed", at, body({"campaign": "spring"})),
        ("o2o.offer.redeemed", at, body({"campaign": "x y"})),  # not a name: "other"
        ("o2o.offer.refused", at, body({"reason": "offer-used"})),
        ("o2o.ble.presence", at, body({"action": "exit", "kind": "app", "dwell_s": 60})),
        ("o2o.ble.presence", at, body({"action": "exit", "kind": "app", "dwell_s": 60})),
        ("o2o.pos.sale", at, body({"total": "lots", "currency": "EUR"})),  # ignored, counted
    ])
    kpis.flush()
    s = summary(kpis.day(day))
    kpis.close()
    assert (s["sales"], s["sales.EUR"], s["sales.EUR.minor"], s["aov.EUR.minor"]) == (
        3, 2, 2000, 1000)
    assert (s["sales.JPY.minor"], s["refunds"], s["refunds.EUR.minor"]) == (300, 1, 200)
    assert s["conversion.visit_to_purchase"] == 0.5  # one of two visits bought
    assert (s["offers.redeemed"], s["offers.redeemed.spring"], s["offers.redeemed.other"],
            s["offers.refused"]) == (3, 2, 1, 1)
    assert kpis.ignored == 1
    assert metrics_of("o2o.pos.sale", {"total": 5, "currency": "eur"})[1] == ("sales.other", 1.0)
