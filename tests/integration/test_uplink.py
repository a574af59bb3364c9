"""The agent as a real process against real brokers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.brokers import PrivateMosquitto, PrivateNats, free_port
from tests.conftest import AgentProcess, emit_lines, wait_for, write_config
from tests.integration.conftest import Subscriber

TOPIC = "o2o/v1/store-1/dev-1/#"


def test_events_reach_broker_with_birth_and_death(
    tmp_path: Path, mosquitto: PrivateMosquitto, agent_factory: list[AgentProcess],
    subscribers: list[Subscriber],
) -> None:
    sub = Subscriber(mosquitto.url, TOPIC, "collector-1")
    subscribers.append(sub)
    assert sub.connected.wait(10)
    cfg = write_config(tmp_path / "config.toml", url=mosquitto.url)
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    lines = [json.dumps({"type": "o2o.nfc.tap", "data": {"i": i}}) for i in range(1000)]
    ids = emit_lines(cfg, lines)
    assert len(ids) == 1000
    wait_for(lambda: set(ids) <= sub.unique(), 30, what="all events upstream")
    ev = sub.events[ids[0]]
    assert ev["source"] == "o2o-edge://store-1/dev-1" and ev["data"] == {"i": 0}
    state = json.loads(sub.retained["o2o/v1/store-1/dev-1/state"])
    assert state["state"] == "online"
    st = agent.status()
    assert st["uplink"]["state"] == "connected"
    wait_for(lambda: agent.status()["outbox"]["depth"] == 0, 20,
             what="outbox drained")
    assert agent.stop() == 0
    wait_for(lambda: json.loads(sub.retained["o2o/v1/store-1/dev-1/state"])["state"]
             == "offline", 10, what="death message")


def test_broker_down_at_start_then_up(
    tmp_path: Path, agent_factory: list[AgentProcess], subscribers: list[Subscriber],
) -> None:
    port = free_port()
    broker = PrivateMosquitto(tmp_path / "late-broker", port=port)
    # the collector's persistent session exists before the outage, as it would upstream
    broker.start()
    sub = Subscriber(broker.url, TOPIC, "collector-late")
    subscribers.append(sub)
    assert sub.connected.wait(10)
    broker.stop()
    cfg = write_config(tmp_path / "config.toml", url=f"mqtt://127.0.0.1:{port}")
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    try:
        ids = emit_lines(cfg, [json.dumps({"type": "o2o.qr.scan", "data": {"i": i}})
                               for i in range(200)])
        st = agent.status()
        assert st["uplink"]["state"] != "connected"
        assert "cannot reach broker" in st["uplink"]["last_error"]
        assert st["outbox"]["depth"] >= 200
        broker.start()
        wait_for(lambda: set(ids) <= sub.unique(), 30, what="backlog upstream")
        historical = [sub.events[i].get("historical") for i in ids]
        assert all(historical), "backlog captured while offline must be marked historical"
        wait_for(lambda: agent.status()["outbox"]["depth"] == 0, 30, what="outbox drained")
    finally:
        agent.stop()
        broker.stop()


def test_mqtt_311_against_nats_jetstream(
    tmp_path: Path, nats: PrivateNats, agent_factory: list[AgentProcess],
    subscribers: list[Subscriber],
) -> None:
    sub = Subscriber(nats.url, TOPIC, "collector-nats", v5=False)
    subscribers.append(sub)
    assert sub.connected.wait(15)
    cfg = write_config(tmp_path / "config.toml", url=nats.url, protocol="3.1.1")
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    ids = emit_lines(cfg, [json.dumps({"type": "o2o.kiosk.checkin", "data": {"i": i}})
                           for i in range(500)])
    wait_for(lambda: set(ids) <= sub.unique(), 30, what="events through NATS")
    assert agent.stop() == 0


def test_v5_refused_by_nats_is_reported(
    tmp_path: Path, nats: PrivateNats, agent_factory: list[AgentProcess],
) -> None:
    cfg = write_config(tmp_path / "config.toml", url=nats.url, protocol="5")
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    emit_lines(cfg, [json.dumps({"type": "o2o.nfc.tap", "data": {}})])
    wait_for(lambda: agent.status()["uplink"]["last_error"] != "", 15)
    st = agent.status()
    assert st["uplink"]["state"] != "connected"
    assert st["outbox"]["depth"] >= 1
    agent.stop()


@pytest.mark.parametrize("limit", ["message_size_limit 20000", "max_packet_size 20000"])
def test_batch_too_large_for_the_broker_is_split(
    tmp_path: Path, agent_factory: list[AgentProcess], subscribers: list[Subscriber], limit: str,
) -> None:
    # message_size_limit: mosquitto drops the connection on a big message;
    # max_packet_size: mosquitto announces the limit in its CONNACK
    broker = PrivateMosquitto(tmp_path / "small", extra_conf=limit)
    broker.start()
    try:
        sub = Subscriber(broker.url, TOPIC, "collector-small")
        subscribers.append(sub)
        assert sub.connected.wait(10)
        cfg = write_config(tmp_path / "config.toml", url=broker.url,
                           extra="batch_max_bytes = 200000")
        agent = AgentProcess(cfg)
        agent_factory.append(agent)
        agent.start()
        ids = emit_lines(cfg, [json.dumps({"type": "o2o.nfc.tap", "data": {"pad": "x" * 400}})
                               for _ in range(300)])
        wait_for(lambda: set(ids) <= sub.unique(), 30, what="split batches upstream")
        st = agent.status()
        if limit.startswith("message_size_limit"):
            assert st["uplink"]["split_batches"] > 0
        assert agent.stop() == 0
    finally:
        broker.kill()
