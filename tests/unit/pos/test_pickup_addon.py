"""Pickup add-on sales: a click-and-collect shopper who checks in the pickup at the kiosk and
buys something else at the till. The visit that checked in a pickup marks its till events,
the KPIs count those sales, their amount and the share of pickups that bought more, and the
report names them in words."""

from __future__ import annotations

import json
import re
from pathlib import Path

from agent.attribution import Visits
from agent.cli.report import render_text
from agent.kpi import Kpis, summary

APP = {"kind": "app", "zone": "immediate"}


def enter(v: Visits, app: str, zone: str = "immediate") -> str:
    return str(v.observe("o2o.ble.presence", {**APP, "id": app, "action": "enter",
                                              "zone": zone})["visit"])


def test_a_sale_after_a_pickup_check_in_is_an_add_on() -> None:
    v = Visits(clock=lambda: 1000.0)
    visit = enter(v, "app:a")
    assert "visit_pickup" not in v.observe("o2o.pos.sale", {"receipt": "R-0"})  # not yet
    # a check-in that failed (a wrong code) makes nothing an add-on
    v.observe("o2o.kiosk.checkin", {"kind": "pickup", "outcome": "not-found"})
    assert "visit_pickup" not in v.observe("o2o.pos.sale", {"receipt": "R-1"})
    checkin = v.observe("o2o.kiosk.checkin", {"kind": "pickup", "outcome": "pickup.ok"})
    assert checkin["visit"] == visit and "visit_pickup" not in checkin
    sale = v.observe("o2o.pos.sale", {"receipt": "R-2"})
    assert (sale["visit"], sale["visit_pickup"]) == (visit, True)
    assert v.observe("o2o.offer.redeemed", {"receipt": "R-2"})["visit_pickup"] is True
    # the visit ends; the next shopper's sale is no add-on
    v.observe("o2o.ble.presence", {**APP, "id": "app:a", "action": "exit"})
    enter(v, "app:b")
    assert "visit_pickup" not in v.observe("o2o.pos.sale", {"receipt": "R-3"})
    # an appointment or a loyalty check-in is no pickup
    v.observe("o2o.kiosk.checkin", {"kind": "appointment", "outcome": "appointment.ok"})
    assert "visit_pickup" not in v.observe("o2o.pos.sale", {"receipt": "R-4"})


def test_the_kpis_and_the_report(tmp_path: Path) -> None:
    kpis = Kpis(tmp_path / "store.db")
    at = 1_800_000_000.0
    day = int(at // 86400 * 86400)

    def ev(t: str, data: dict[str, object]) -> tuple[str, float, str]:
        return (t, at, json.dumps({"data": data}))

    kpis.add_bodies([
        *[ev("o2o.kiosk.checkin", {"kind": "pickup", "outcome": "pickup.ok"})] * 3,
        ev("o2o.kiosk.checkin", {"kind": "pickup", "outcome": "pickup.ready"}),
        ev("o2o.kiosk.checkin", {"kind": "pickup", "outcome": "not-found"}),
        ev("o2o.kiosk.checkin", {"kind": "appointment", "outcome": "appointment.ok"}),
        ev("o2o.pos.sale", {"total": 1250, "currency": "EUR", "visit": "v1",
                            "visit_pickup": True}),
        ev("o2o.pos.sale", {"total": 450, "currency": "EUR", "visit": "v2",
                            "visit_pickup": True}),
        ev("o2o.pos.sale", {"total": 3000, "currency": "EUR", "visit": "v3"}),
        ev("o2o.pos.sale", {"total": 100, "currency": "EUR", "visit_pickup": "yes"}),  # not
        ev("o2o.pos.refund", {"total": 450, "currency": "EUR", "visit_pickup": True}),
    ])
    kpis.flush()
    s = summary(kpis.day(day))
    kpis.close()
    assert (s["checkins.pickup"], s["pickup_addon"], s["pickup_addon.EUR.minor"]) == (4, 2, 1700)
    assert s["conversion.pickup_to_addon"] == 0.5  # 2 of 4 pickups bought more
    assert s["sales.EUR.minor"] == 4800  # add-ons are sales too
    text = render_text("2027-01-15", {}, s, "UTC")
    sales = text.split("Sales and offers\n")[1].split("\n\n")[0]
    assert re.search(r"Add-on sales at a pickup +2\n", sales), sales
    assert re.search(r"Add-on sales at a pickup \(EUR\) +17.00 EUR", sales), sales
    assert re.search(r"Pickups that bought more +50 %", sales), sales
    assert re.search(r"Pickups checked in +4", text), text
    # more add-ons than pickups (a shopper who paid twice): at most all of them
    over = summary({"checkins.pickup": [1.0], "pickup_addon": [3.0], "sales": [3.0]})
    assert over["conversion.pickup_to_addon"] == 1.0
    # without tills there is no such share: nothing reported sales
    assert "conversion.pickup_to_addon" not in summary({"checkins.pickup": [2.0]})
