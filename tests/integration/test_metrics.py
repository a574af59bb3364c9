"""Observability: the Prometheus endpoint scraped and parsed with the Prometheus text parser
while the agent syncs to a real broker, and the health document on MQTT …/telemetry."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import AgentProcess, emit_lines, wait_for, write_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[str, list[Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def value(m: dict[str, list[Any]], name: str, **labels: str) -> float:
    for s in m.get(name, []):
        if all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    raise KeyError(f"{name} {labels} not in {sorted(m)}")


def test_metrics_endpoint_and_telemetry(tmp_path: Path, mosquitto: Any,
                                        agent_factory: list[AgentProcess]) -> None:
    port = _free_port()
    cfg = write_config(tmp_path / "config.toml", url=mosquitto.url, extra=f"""
[metrics]
listen = "127.0.0.1:{port}"
telemetry_interval_s = 5
""")
    got: list[dict[str, Any]] = []
    seen = threading.Event()

    def on_message(c: Any, u: Any, msg: Any) -> None:
        got.append(json.loads(msg.payload))
        seen.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="telemetry-watcher")
    sub.on_message = on_message
    sub.connect("127.0.0.1", mosquitto.port)
    sub.subscribe("o2o/v1/store-1/dev-1/telemetry", qos=0)
    sub.loop_start()
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    try:
        emit_lines(cfg, [json.dumps({"type": "o2o.kiosk.view", "data": {"page": "p"}})] * 7)
        wait_for(lambda: value(scrape(port), "o2o_outbox_depth") == 0, 30, what="drained")
        m = scrape(port)
        assert value(m, "o2o_events_committed_total", type="o2o.kiosk.view") == 7
        assert value(m, "o2o_events_committed_total", type="o2o.agent.started") == 1
        assert value(m, "o2o_uplink_connected") == 1
        assert value(m, "o2o_events_sent_total") >= 8
        assert value(m, "o2o_agent_info", store="store-1", device="dev-1") == 1
        assert value(m, "o2o_outbox_oldest_age_seconds") == 0
        assert seen.wait(15), "no telemetry within 15 s"
        doc = got[-1]
        assert doc["outbox_depth"] == 0 and doc["uplink_connects"] == 1
        assert doc["sent"] >= 8 and "bootid" in doc
        wait_for(lambda: got[-1].get("kpis_today", {}).get("views") == 7, 15,
                 what=lambda: f"today's KPIs in telemetry: {got[-1]}")
    finally:
        sub.disconnect()  # first: loop_stop alone waits out the loop's 1 s select
        sub.loop_stop()
    assert agent.stop() == 0
    # the endpoint is gone with the agent
    try:
        scrape(port)
        raise AssertionError("metrics still served after the agent stopped")
    except OSError:
        pass
