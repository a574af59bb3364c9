"""Campaigns on events, and events linked into one app visit only when it is unambiguous."""

from __future__ import annotations

from typing import Any

from agent.attribution import Visits

APP1, APP2 = "app:2f23:77:3", "app:2f23:77:4"


def presence(app: str, action: str, zone: str = "immediate") -> dict[str, Any]:
    return {"id": app, "action": action, "kind": "app",
            **({"zone": zone} if action != "exit" else {"last_zone": zone})}


def test_a_visit_collects_its_events_and_its_campaign() -> None:
    v = Visits()
    enter = v.observe("o2o.ble.presence", presence(APP1, "enter", "near"))
    visit = enter["visit"]
    tap = v.observe("o2o.nfc.tap", {"records": [{"type": "uri", "utm": {}}]})
    assert tap["visit"] == visit and "campaign" not in tap  # the only app near the kiosk
    scan = v.observe("o2o.qr.scan", {"class": "campaign", "utm": {"campaign": "winter"}})
    assert scan == {"class": "campaign", "utm": {"campaign": "winter"}, "campaign": "winter",
                    "visit": visit, "visit_campaign": "winter"}
    view = v.observe("o2o.kiosk.view", {"page": "p", "campaign": "autumn"})
    assert view["campaign"] == "autumn" and view["visit_campaign"] == "winter"  # the first
    checkin = v.observe("o2o.kiosk.checkin", {"kind": "pickup", "outcome": "pickup.ok"})
    assert checkin["visit"] == visit and checkin["visit_campaign"] == "winter"
    leave = v.observe("o2o.ble.presence", presence(APP1, "exit"))
    assert leave["visit"] == visit and leave["visit_campaign"] == "winter"
    after = v.observe("o2o.kiosk.checkin", {"kind": "pickup"})
    assert "visit" not in after  # the visit is over


def test_no_guessing_between_two_apps_and_no_visit_for_others() -> None:
    v = Visits()
    a = v.observe("o2o.ble.presence", presence(APP1, "enter", "near"))["visit"]
    b = v.observe("o2o.ble.presence", presence(APP2, "enter", "near"))["visit"]
    assert a != b
    assert "visit" not in v.observe("o2o.qr.scan", {"class": "text"})  # two equally close
    v.observe("o2o.ble.presence", presence(APP2, "zone", "immediate"))
    assert v.observe("o2o.qr.scan", {"class": "text"})["visit"] == b  # one at the kiosk
    beacon = {"id": "ibeacon:x:1:1", "action": "enter", "kind": "beacon", "zone": "immediate"}
    assert v.observe("o2o.ble.presence", beacon) == beacon  # the store's beacons are no visit
    assert v.observe("o2o.ble.footfall", {"devices": 3}) == {"devices": 3}
