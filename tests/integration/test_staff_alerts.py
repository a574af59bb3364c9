"""Staff alerts against the agent process with no broker configured (local first): a shopper's
call for staff from a bus client raises an alert, `alert-ack` acknowledges it and the ack is
on the bus stream; only a client with the staff bus token may list and act on alerts (the
kiosk is refused, counted in status); a pickup check-in raises one that names the shopper
only locally, and its answer names that alert; a call that reaches the agent long after its
press raises none; an unacknowledged one escalates; refusals are answered; a restart keeps
the alerts; `report` shows the response times."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from agent.bus.client import AsyncBusClient, BusClient
from agent.contracts.alerts import token_digest
from agent.errors import AgentError
from tests.conftest import CLI, ROOT, AgentProcess, write_config
from tests.integration.conftest import next_event

ESCALATE_S = 10  # the shortest [staff] escalate_after_s allowed
TOKEN = "the-staff-view-bus-token-of-this-test"
STAFF = f'bus_tokens = ["{token_digest(TOKEN)}"]'  # [staff]: the agent keeps the digest


async def scenario(sock: Path) -> dict[str, Any]:
    watcher = await AsyncBusClient.connect(sock)
    staff = await AsyncBusClient.connect(sock)
    kiosk = await AsyncBusClient.connect(sock)
    try:
        stream = await watcher.subscribe()
        # the kiosk's "call staff" button: o2o.kiosk.assist (kiosk/app.py)
        t0 = time.monotonic()
        [call_id] = await kiosk.emit([{"type": "o2o.kiosk.assist", "data": {"screen": "home"}}])
        raised = await next_event(stream, "o2o.staff.alert",
                                  lambda d: d["cause"] == call_id, within=10)
        raise_ms = (time.monotonic() - t0) * 1000
        alert_id = raised["data"]["alert"]
        assert raised["data"]["kind"] == "call-staff" and raised["data"]["level"] == 0
        # the kiosk (no token) may neither list nor act: the list names shoppers
        for ask in ({"op": "alerts"}, {"op": "alert-ack", "id": alert_id, "by": "Kiosk"},
                    {"op": "alert-close", "id": alert_id, "by": "Kiosk", "token": "guessed" * 3}):
            with pytest.raises(AgentError, match="staff") as refused:
                await kiosk.request(ask)
            assert refused.value.reason.value == "forbidden"
        bus = (await kiosk.request({"op": "status"}))["status"]["bus"]
        assert bus["refused_requests"]["alerts:staff-only"] == 1
        assert bus["refused_requests"]["alert-ack:staff-only"] == 1
        assert bus["refused_requests"]["alert-close:wrong-token"] == 1
        listed = await staff.request({"op": "alerts", "token": TOKEN})
        [alert] = [a for a in listed["alerts"] if a["id"] == alert_id]
        assert alert["state"] == "open"
        assert alert["state"] == "open" and alert["cause"] == call_id
        assert "help" in alert["subject"]

        ack = await staff.request({"op": "alert-ack", "id": alert_id, "by": "Anna",
                                   "token": TOKEN})
        assert ack["outcome"] == "acknowledged" and ack["alert"]["acknowledged_by"] == "Anna"
        acked = await next_event(stream, "o2o.staff.alert.acknowledged",
                                 lambda d: d["alert"] == alert_id, within=10)
        assert acked["data"]["by"] == "Anna" and acked["data"]["response_s"] >= 0

        # refusals: answered with their reason, the connection goes on
        other = await staff.request({"op": "alert-ack", "id": alert_id, "by": "Ben",
                                     "token": TOKEN})
        assert other["outcome"] == "already-acknowledged"
        assert (await staff.request({"op": "alert-close", "id": "nope", "by": "Ben",
                                     "token": TOKEN}))["outcome"] == "unknown-alert"
        for bad in ({"id": alert_id, "by": "\x07"}, {"id": 7, "by": "Ben"},
                    {"id": ["x"], "by": "Ben"}, {"id": "x" * 5000, "by": "Ben"},
                    {"id": alert_id, "by": None}, {"by": "Ben"}):
            assert (await staff.request({"op": "alert-ack", **bad, "token": TOKEN}))[
                "outcome"] == "invalid", bad
        # the same ack again (a retried request): nothing twice
        again = await staff.request({"op": "alert-ack", "id": alert_id, "by": "Anna",
                                     "token": TOKEN})
        assert again["outcome"] == "acknowledged"
        # only the agent records an ack: a bus client cannot forge one
        with pytest.raises(AgentError, match="the agent's own record"):
            await kiosk.emit([{"type": "o2o.staff.alert.acknowledged",
                               "data": {"alert": alert_id, "by": "Mallory"}}])
        done = await staff.request({"op": "alert-close", "id": alert_id, "by": "Anna",
                                    "token": TOKEN})
        assert done["outcome"] == "closed"
        await next_event(stream, "o2o.staff.alert.closed", lambda d: d["alert"] == alert_id,
                         within=10)

        # a pickup check-in: the alert names the shopper here, never in the event
        answer = await kiosk.request({"op": "checkin",
                                      "request": {"kind": "pickup", "code": "K7Q2M9"}})
        assert answer["result"]["outcome"] == "pickup.ok"
        pickup = await next_event(stream, "o2o.staff.alert",
                                  lambda d: d["kind"] == "pickup", within=10)
        assert answer["result"]["alert"] == pickup["data"]["alert"]  # the kiosk follows it
        assert "Anna" not in json.dumps(pickup)
        assert pickup["data"]["ref"] == {"order": "A-1042", "code": "K7Q2M9"}
        listed = await staff.request({"op": "alerts", "token": TOKEN})
        assert [a["kind"] for a in listed["alerts"]].count("pickup") == 1  # raised once
        [shown] = [a for a in listed["alerts"] if a["id"] == pickup["data"]["alert"]]
        assert shown["subject"] == "Anna is here for order K7Q2M9 (being prepared, about 3 min)"

        # a call pressed while the agent was away, sent when it came back: recorded, no alert
        [late] = await kiosk.emit([{"type": "o2o.kiosk.assist", "data": {
            "screen": "home", "counter": True, "kiosk_time": time.time() - 300}}])
        # nobody acknowledges it: it escalates after [staff] escalate_after_s
        escalated = await next_event(stream, "o2o.staff.alert.escalated",
                                     lambda d: d["alert"] == pickup["data"]["alert"],
                                     within=ESCALATE_S + 10)
        assert escalated["data"]["level"] == 1
        assert escalated["data"]["waited_s"] >= ESCALATE_S
        # handed over: its alert closes by itself
        await kiosk.request({"op": "handover", "order": "A-1042"})
        closed = await next_event(stream, "o2o.staff.alert.closed",
                                  lambda d: d["alert"] == pickup["data"]["alert"], within=10)
        assert closed["data"]["by"] == "handover"
        listed = await staff.request({"op": "alerts", "token": TOKEN})
        assert not [a for a in listed["alerts"] if a["cause"] == late]
        return {"raise_ms": raise_ms, "alert_id": alert_id}
    finally:
        for client in (watcher, staff, kiosk):
            await client.close()


def test_a_call_for_staff_is_raised_acknowledged_and_streamed_without_a_broker(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    store_db = tmp_path / "store.db"
    cfg = write_config(tmp_path / "config.toml", url="",  # no broker at all: local first
                       extra=f'[kiosk]\nstore_db = "{store_db}"\n\n'
                             f"[staff]\nescalate_after_s = {ESCALATE_S}\n{STAFF}\n")
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id,code,first_name,status,eta_min\n"
                      "A-1042,K7Q2M9,Anna,preparing,3\n")
    subprocess.run([*CLI, "orders", "import", str(orders), "--config", str(cfg)], check=True,
                   capture_output=True, cwd=ROOT, timeout=60)
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    seen = asyncio.run(scenario(tmp_path / "agent.sock"))
    print(f"kiosk call -> alert event on the bus stream: {seen['raise_ms']:.0f} ms")
    assert agent.stop() == 0

    # a restart keeps the alerts (the store database), closed ones among the recent
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    with BusClient(tmp_path / "agent.sock") as bus:
        listed = bus.request({"op": "alerts", "token": TOKEN})
    assert listed["open"] == 0
    assert {a["id"]: a["state"] for a in listed["alerts"]}[seen["alert_id"]] == "closed"
    assert agent.stop() == 0

    res = subprocess.run([*CLI, "report", "--json", "--config", str(cfg)], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)["summary"]
    assert summary["alerts"] == 2 and summary["alerts.acknowledged"] == 1
    assert summary["alerts.escalated"] >= 1 and summary["alerts.closed"] == 2
    assert "alerts.ack_s.average" in summary and "alerts.close_s.average" in summary
    text = subprocess.run([*CLI, "report", "--config", str(cfg)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60).stdout
    assert "Time to acknowledge" in text
