"""One event a broker will never take must not stall the uplink: a real mosquitto with
`max_packet_size` (announced in the MQTT 5 CONNACK; on 3.1.1 it just closes the connection),
a broker limit under 1 KiB, and a broker that disconnects with 0x95 (packet too large).

What a user checks: the other events arrive, the one event is a counted drop (in status and
reported upstream), the agent does not reconnect in a loop, and doctor says whether events
leave (a broker refusing every batch by ACL is a failure, not "all good").
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent.bus.client import BusClient
from simulators.brokers import BrokerUnavailable, PrivateMosquitto
from tests.abuse.hostile_broker import DISCONNECT_TOO_LARGE, HostileBroker, Publish
from tests.conftest import CLI, ROOT, AgentProcess, wait_for, write_config
from tests.integration.conftest import Subscriber

EVENTS_TOPIC = "o2o/v1/store-1/dev-1/events"


def limited_mosquitto(workdir: Path, extra: str) -> PrivateMosquitto:
    """A private mosquitto with `extra` in its configuration; the test kills it."""
    try:
        broker = PrivateMosquitto(workdir, extra_conf=extra)
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))
    broker.start()
    return broker


def start_agent(agents: list[AgentProcess], cfg: Path) -> AgentProcess:
    agent = AgentProcess(cfg)
    agents.append(agent)
    agent.start()
    return agent


def emit(agent: AgentProcess, events: list[dict[str, Any]]) -> list[str]:
    with BusClient(agent.socket, timeout=30) as c:
        return [i for i in c.emit(events) if i]


def uplink(agent: AgentProcess) -> dict[str, Any]:
    return agent.status()["uplink"]  # type: ignore[no-any-return]


def one_big_then_small(agent: AgentProcess, big: int, small: int) -> tuple[str, list[str]]:
    big_id = emit(agent, [{"type": "o2o.kiosk.checkin", "data": {"pad": "x" * big}}])[0]
    rest = [emit(agent, [{"type": "o2o.kiosk.checkin", "data": {"i": i}}])[0]
            for i in range(small)]
    return big_id, rest


@pytest.mark.parametrize(("protocol", "limit", "big", "reason", "max_connects"), [
    ("5", 65536, 65500, "too_large", 1),  # announced: dropped before sending, no reconnect
    ("5", 32768, 50000, "too_large", 1),
    ("3.1.1", 32768, 50000, "refused_by_broker", 8),  # closed on it alone, three times
])
def test_one_event_over_the_brokers_packet_limit_does_not_stall_the_others(
        tmp_path: Path, agent_factory: list[AgentProcess], protocol: str, limit: int,
        big: int, reason: str, max_connects: int) -> None:
    broker = limited_mosquitto(tmp_path / "mosq", f"max_packet_size {limit}")
    sub = Subscriber(broker.url, EVENTS_TOPIC, "collector", v5=protocol == "5")
    try:
        assert sub.connected.wait(10)
        cfg = write_config(tmp_path / "config.toml", url=broker.url, protocol=protocol)
        agent = start_agent(agent_factory, cfg)
        wait_for(lambda: uplink(agent)["state"] == "connected", what="connected")
        big_id, rest = one_big_then_small(agent, big, 20)
        wait_for(lambda: set(rest) <= sub.unique(), timeout=30,
                 what=f"the 20 small events delivered ({sub.health()}, {uplink(agent)})")
        up = uplink(agent)
        assert up["dropped"] == {reason: 1}
        assert big_id not in sub.unique()
        assert "dropped one event" in up["last_drop"] and reason in up["last_drop"]
        assert up["connects"] <= max_connects, up
        # told upstream like every drop, and nothing stays behind
        wait_for(lambda: any(e["type"] == "o2o.agent.uplink.dropped"
                             and e["data"]["dropped"] == {reason: 1}
                             for e in list(sub.events.values())), what="drop report")
        wait_for(lambda: agent.status()["outbox"]["depth"] == 0, what="outbox drained")
    finally:
        sub.close()
        broker.kill()


def test_a_broker_limit_under_1_kib_is_honoured(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    broker = limited_mosquitto(tmp_path / "mosq", "max_packet_size 700")
    sub = Subscriber(broker.url, EVENTS_TOPIC, "collector")
    try:
        assert sub.connected.wait(10)
        agent = start_agent(agent_factory, write_config(tmp_path / "config.toml",
                                                        url=broker.url))
        wait_for(lambda: uplink(agent)["state"] == "connected", what="connected")
        ids = emit(agent, [{"type": "o2o.kiosk.checkin", "data": {"i": i}} for i in range(30)])
        wait_for(lambda: set(ids) <= sub.unique(), timeout=30,
                 what=f"all 30 delivered ({sub.health()}, {uplink(agent)})")
        up = uplink(agent)
        assert up["batch_max_bytes"] < 700 and up["dropped"] == {}
        assert up["connects"] == 1, up
    finally:
        sub.close()
        broker.kill()


def test_disconnect_packet_too_large_drops_the_one_event(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    def answer(p: Publish) -> int | str:
        return DISCONNECT_TOO_LARGE if len(p.payload) > 4000 else 0x00

    with HostileBroker(answer=answer) as broker:
        agent = start_agent(agent_factory, write_config(tmp_path / "config.toml",
                                                        url=broker.url))
        wait_for(lambda: uplink(agent)["state"] == "connected", what="connected")
        big_id, rest = one_big_then_small(agent, 6000, 5)
        wait_for(lambda: set(rest) <= broker.success_ids, timeout=30,
                 what=f"the small events delivered ({uplink(agent)})")
        up = uplink(agent)
        assert big_id not in broker.success_ids
        assert up["dropped"] == {"too_large": 1}
        assert DISCONNECT_TOO_LARGE in broker.answered
        assert len(broker.connects) <= 4, len(broker.connects)  # no reconnect loop


def doctor(cfg: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    res = subprocess.run([*CLI, "doctor", "--json", "--config", str(cfg)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode, {f["check"]: f for f in json.loads(res.stdout)["findings"]}


def test_doctor_fails_when_the_broker_refuses_every_batch(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    # what mosquitto answers a device missing from its events topic's ACL
    broker = HostileBroker(answer=lambda p: 0x87)
    try:
        cfg = write_config(tmp_path / "config.toml", url=broker.url)
        agent = start_agent(agent_factory, cfg)
        emit(agent, [{"type": "o2o.kiosk.checkin", "data": {}}])
        wait_for(lambda: uplink(agent)["refusals"].get("not_authorized"), what="refused")
        rc, found = doctor(cfg)
        assert found["agent"]["level"] == "fail", found["agent"]
        assert rc == 1
        assert "refuses our events" in found["agent"]["message"]
        assert "ACL" in found["agent"]["fix"]
        # the ACL fixed: all goes, and doctor is content
        broker.set_answer(lambda p: 0x00)
        wait_for(lambda: agent.status()["outbox"]["depth"] == 0, timeout=30, what="drained")
        rc, found = doctor(cfg)
        assert found["agent"]["level"] == "ok", found["agent"]
        # the broker unavailable with events waiting: a warning saying so, not "ok"
        broker.refuse_connect = 0x88
        broker.drop_connections()
        wait_for(lambda: uplink(agent)["state"] != "connected", what="disconnected")
        emit(agent, [{"type": "o2o.kiosk.checkin", "data": {}}])
        rc, found = doctor(cfg)
        assert found["agent"]["level"] == "warn", found["agent"]
        assert "events waiting" in found["agent"]["message"]
    finally:
        broker.close()
