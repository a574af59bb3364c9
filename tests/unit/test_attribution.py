"""Campaigns on events, and events linked into one app visit only when it is unambiguous."""

from __future__ import annotations

from typing import Any

from agent.attribution import STAFF_MODE_MAX_S, Visits

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


def test_reads_in_staff_mode_are_staff_tests_linked_to_no_visit() -> None:
    now = [1000.0]
    v = Visits(clock=lambda: now[0])
    v.observe("o2o.ble.presence", presence(APP1, "enter"))
    assert "visit" in v.observe("o2o.nfc.tap", {"tag": {}})  # a shopper's tap
    v.observe("o2o.kiosk.staff", {"action": "enter"})
    tap = v.observe("o2o.nfc.tap", {"tag": {}})
    scan = v.observe("o2o.qr.scan", {"class": "url", "utm": {"campaign": "spring"}})
    assert tap == {"tag": {}, "staff_test": True}
    assert scan["staff_test"] is True and "visit" not in scan and "campaign" not in scan
    v.observe("o2o.kiosk.staff", {"action": "leave"})
    assert "staff_test" not in v.observe("o2o.nfc.tap", {"tag": {}})


def test_staff_mode_ends_with_a_shopper_at_the_kiosk_or_after_its_longest() -> None:
    now = [1000.0]
    v = Visits(clock=lambda: now[0])
    v.observe("o2o.kiosk.staff", {"action": "enter"})
    v.observe("o2o.kiosk.view", {"page": "p"})  # the kiosk came back without a "leave"
    assert "staff_test" not in v.observe("o2o.nfc.tap", {"tag": {}})
    v.observe("o2o.kiosk.staff", {"action": "enter"})
    v.observe("o2o.kiosk.staff", {"action": "pin-refused"})  # still staff mode
    assert v.observe("o2o.qr.scan", {"class": "text"}).get("staff_test") is True
    now[0] += STAFF_MODE_MAX_S + 1  # a kiosk that died in staff mode
    assert "staff_test" not in v.observe("o2o.qr.scan", {"class": "text"})
