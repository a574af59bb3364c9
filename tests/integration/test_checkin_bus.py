"""Check-in over the local bus against the agent process: orders imported with the CLI,
answers to the kiosk's requests, the outcome recorded as events, unknown ops named."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from agent.bus.client import BusClient
from agent.errors import AgentError
from tests.conftest import CLI, ROOT, AgentProcess, write_config


def test_checkin_requests_over_the_bus(tmp_path: Path,
                                       agent_factory: list[AgentProcess]) -> None:
    cfg = write_config(tmp_path / "config.toml", url="",
                       extra=f'[kiosk]\nstore_db = "{tmp_path / "store.db"}"\n')
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id,code,first_name,status,eta_min\nA-1042,K7Q2M9,Anna,preparing,3\n")
    res = subprocess.run([*CLI, "orders", "import", str(orders), "--config", str(cfg)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0 and "imported 1 orders" in res.stdout, res.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("order_id,code\nA-1,??\n")
    res = subprocess.run([*CLI, "orders", "import", str(bad), "--config", str(cfg)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 1 and "line 2: code must be 4-10" in res.stderr

    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    with BusClient(tmp_path / "agent.sock") as bus:
        reply = bus.request({"op": "checkin", "request": {"kind": "pickup", "code": "K7Q2M9"}})
        result = reply["result"]
        # the staff alert the arrival raised, for the kiosk to follow
        assert isinstance(result.pop("alert"), str)
        assert result == {"outcome": "pickup.ok", "name": "Anna", "minutes": 3}
        assert bus.request({"op": "queue"})["queue"][0]["order_id"] == "A-1042"
        assert bus.request({"op": "handover", "order": "A-1042"})["result"] == {
            "outcome": "handed-over"}
        with pytest.raises(AgentError, match="use one of: emit, status, subscribe, ping, "
                                              "checkin, queue, handover"):
            bus.request({"op": "refund"})
    assert agent.stop() == 0
    res = subprocess.run([*CLI, "outbox", "export", "--config", str(cfg)], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    events = [json.loads(line) for line in res.stdout.splitlines()]
    types = [e["type"] for e in events]
    assert "o2o.kiosk.checkin" in types and "o2o.kiosk.handover" in types
    assert "Anna" not in res.stdout


def test_a_check_in_is_linked_to_the_app_visit_and_its_campaign(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    cfg = write_config(tmp_path / "config.toml", url="",
                       extra=f'[kiosk]\nstore_db = "{tmp_path / "store.db"}"\n')
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id,code,first_name\nA-7,K7Q2M9,Anna\n")
    subprocess.run([*CLI, "orders", "import", str(orders), "--config", str(cfg)], check=True,
                   capture_output=True, cwd=ROOT, timeout=60)
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    app = {"id": "app:2f234454-cf6d-4a0f-adf2-f4911ba9ffa6:77:3", "kind": "app"}
    with BusClient(tmp_path / "agent.sock") as bus:
        bus.emit([{"type": "o2o.ble.presence", "data": {**app, "action": "enter",
                                                        "zone": "immediate"}},
                  {"type": "o2o.qr.scan", "data": {"class": "campaign",
                                                   "utm": {"campaign": "winter-sale"}}}])
        bus.request({"op": "checkin", "request": {"kind": "pickup", "code": "K7Q2M9"}})
        bus.emit([{"type": "o2o.ble.presence", "data": {**app, "action": "exit"}}])
    assert agent.stop() == 0
    res = subprocess.run([*CLI, "outbox", "export", "--config", str(cfg)], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    by_type = {e["type"]: e["data"] for e in map(json.loads, res.stdout.splitlines())
               if e["type"] != "o2o.ble.presence"}
    presence = [e["data"] for e in map(json.loads, res.stdout.splitlines())
                if e["type"] == "o2o.ble.presence"]
    visit = presence[0]["visit"]
    assert by_type["o2o.qr.scan"]["campaign"] == "winter-sale"
    assert by_type["o2o.kiosk.checkin"]["visit"] == visit
    assert by_type["o2o.kiosk.checkin"]["visit_campaign"] == "winter-sale"
    assert presence[1]["visit"] == visit and presence[1]["visit_campaign"] == "winter-sale"
