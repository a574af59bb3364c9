"""Local KPIs: events through the agent process become hourly roll-ups that survive a
restart, answer on the bus, and print and render with `o2o-edge report`."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from agent.bus.client import BusClient
from agent.checkin import StoreDb
from tests.conftest import CLI, ROOT, AgentProcess, wait_for, write_config


def test_hourly_rollups_and_report(tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    cfg = write_config(tmp_path / "config.toml", url="",
                       extra=f'[kiosk]\nstore_db = "{tmp_path / "store.db"}"\n'
                             '[metrics]\nlisten = ""\n')
    db = StoreDb(tmp_path / "store.db")
    db.replace("orders", [{"order_id": "A-1", "code": "K7Q2M9", "first_name": "Anna",
                           "status": "ready", "eta_min": 0, "store": ""}])
    db.close()
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    token = "01KBG7Z2RQ5T8W3N6Y9C4D1F0H"  # the hand-off link's o2o_h (kiosk/handoff.py)
    events = (
        [("o2o.nfc.tap", {"tag": {"kind": "shelf"}})] * 3
        + [("o2o.qr.scan", {"class": "product"})] * 2 + [("o2o.qr.scan", {"class": "rejected"})]
        + [("o2o.kiosk.view", {"page": "p"})] * 4
        + [("o2o.kiosk.handoff", {"page": "p", "campaign": None, "medium": "nfc",
                                  "token": token})]
        + [("o2o.kiosk.survey", {"score": 5, "scale": 5, "after": "checkin"}),
           ("o2o.kiosk.survey", {"score": 3, "scale": 5, "after": "browse"})]
        + [("o2o.ble.presence", {"action": "exit", "kind": "app", "dwell_s": 120}),
           ("o2o.ble.presence", {"action": "exit", "kind": "app", "dwell_s": 60}),
           ("o2o.ble.presence", {"action": "exit", "kind": "beacon", "dwell_s": 9000}),
           ("o2o.ble.presence", {"action": "enter", "kind": "app"})]
        + [("o2o.ble.footfall", {"devices": 4}), ("o2o.ble.footfall", {"devices": 7})]
        # staff mode: the reader test's tap is no shopper's
        + [("o2o.kiosk.staff", {"action": "enter"}), ("o2o.nfc.tap", {"tag": {}}),
           ("o2o.kiosk.staff", {"action": "leave"})])
    with BusClient(tmp_path / "agent.sock") as bus:
        ids = bus.emit([{"type": t, "data": d} for t, d in events])
        assert ids[10] == token  # web analytics joins the link's session to this event
        for code in ("K7Q2M9", "NOPE00"):
            bus.request({"op": "checkin", "request": {"kind": "pickup", "code": code}})

        def summary() -> dict[str, object]:
            return dict(bus.request({"op": "kpis"})["summary"])
        # the successful pickup check-in also raised a staff alert (counted after it)
        wait_for(lambda: summary().get("checkins") == 2 and summary().get("alerts") == 1, 20,
                 what=lambda: str(summary()))
        s = summary()
    assert s == {
        "alerts": 1,
        "checkins": 2, "checkins.ok": 1, "checkins.pickup": 1, "handoffs": 1, "scans": 3, "scans.product": 2,
        "scans.rejected": 1, "survey.answers": 2, "survey.s5.answers": 2, "taps": 3,
        "taps.staff_test": 1, "views": 4, "visits": 2,
        "conversion.view_to_handoff": 0.25, "survey.average": 4.0, "survey.s5.average": 4.0,
        "dwell_s.average": 90.0, "footfall.peak_per_min": 7.0}
    assert agent.stop() == 0
    # after the restart (and with the agent stopped) the report reads the same numbers
    res = subprocess.run([*CLI, "report", "--json", "--config", str(cfg), "--html",
                          str(tmp_path / "day.html")], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["summary"] == s
    page = (tmp_path / "day.html").read_text()
    assert page.count("<svg") >= 10 and "Views handed off to a phone" in page
    text = subprocess.run([*CLI, "report", "--config", str(cfg)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60).stdout
    assert re.search(r"\n  Taps \(NFC\) +3\n", text) and "By hour (UTC)" in text
    bad = subprocess.run([*CLI, "report", "--day", "yesterday", "--config", str(cfg)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr
