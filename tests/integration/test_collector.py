"""The reference collector against a real broker: every event the agent sends stored once,
a re-sent batch counted as duplicates, a missing stretch of seq reported as a gap."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.collector.store import EventStore
from tests.conftest import (
    CLI,
    ROOT,
    AgentProcess,
    emit_lines,
    throwaway_postgres,
    wait_for,
    write_config,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'collected.db'}"
        return
    with throwaway_postgres("o2o_collect") as url:
        yield url


def test_collector_dedupes_and_reports_gaps(tmp_path: Path, mosquitto: Any, db_url: str,
                                            agent_factory: list[AgentProcess]) -> None:
    db = db_url
    collector = subprocess.Popen([*CLI, "collect", "--broker", mosquitto.url, "--db", db,
                                  "--client-id", "test-collector"], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = EventStore(db)
    probe = json.dumps([{"id": "P1", "source": "o2o-edge://store-1/probe", "bootid": "P",
                         "seq": 1, "type": "o2o.probe", "time": "2026-11-30T00:00:00Z"}])
    try:
        # until the collector has subscribed, what is published is not kept for it
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="prober")
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()

        def probed() -> bool:
            pub.publish("o2o/v1/store-1/probe/events", probe, qos=1).wait_for_publish(10)
            time.sleep(0.1)
            return store.count() >= 1
        wait_for(probed, 30, what="the collector subscribed")
        pub.disconnect()  # first: loop_stop alone waits out the loop's 1 s select
        pub.loop_stop()
        cfg = write_config(tmp_path / "config.toml", url=mosquitto.url)
        agent = AgentProcess(cfg)
        agent_factory.append(agent)
        agent.start()
        emit_lines(cfg, [json.dumps({"type": "o2o.kiosk.view", "data": {"i": i}})
                         for i in range(300)])
        wait_for(lambda: store.count() >= 302, 30, what=lambda: f"{store.count()} stored")
        assert agent.stop() == 0
        (boot,) = [r for r in store.report() if r["bootid"] != "P"]
        assert boot["events"] == boot["last_seq"] and boot["first_seq"] == 1
        assert boot["gaps"] == [] and boot["duplicates"] == 0
        # upstream receives a batch twice (a PUBACK lost on the way), and a device that lost
        # events: both show in the report
        again = store.bodies(boot["bootid"], 2)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="resender")
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        batch = "[" + ",".join(again) + "]"
        pub.publish("o2o/v1/store-1/dev-1/events", batch, qos=1).wait_for_publish(10)
        gap = [{"id": f"X{n}", "source": "o2o-edge://store-1/dev-9", "bootid": "B9", "seq": n,
                "type": "o2o.kiosk.view", "time": "2026-11-30T00:00:00Z", "data": {}}
               for n in (1, 2, 5, 6)]
        pub.publish("o2o/v1/store-1/dev-9/events", json.dumps(gap), qos=1).wait_for_publish(10)
        pub.publish("o2o/v1/store-1/dev-9/events", b"not a batch", qos=1).wait_for_publish(10)
        pub.disconnect()  # first: loop_stop alone waits out the loop's 1 s select
        pub.loop_stop()
        wait_for(lambda: store.count() >= 306, 10)
        report = {r["bootid"]: r for r in store.report()}
        assert report[boot["bootid"]]["duplicates"] == 2
        assert report[boot["bootid"]]["events"] == boot["events"]
        assert report["B9"]["gaps"] == [[3, 4]]
    finally:
        collector.send_signal(signal.SIGTERM)
        out, err = collector.communicate(timeout=30)
    assert "Traceback" not in err, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["stored"] == 306 and summary["duplicates"] >= 2  # the probe's repeats too
    assert summary["unreadable_messages"] == 1
    res = subprocess.run([*CLI, "collect", "--db", db, "--report"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0 and len(json.loads(res.stdout)) == 3
    store.close()
    bad = subprocess.run([sys.executable, "-m", "agent.cli.main", "collect", "--db",
                          "mysql://x", "--report"], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and "sqlite:///PATH or postgresql://" in bad.stderr


def test_collector_on_nats_mqtt_311(tmp_path: Path, nats: Any,
                                    agent_factory: list[AgentProcess]) -> None:
    db = f"sqlite:///{tmp_path / 'nats.db'}"
    collector = subprocess.Popen([*CLI, "collect", "--broker", nats.url, "--db", db,
                                  "--protocol", "3.1.1", "--client-id", "nats-collector"],
                                 cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
    store = EventStore(db)
    try:
        cfg = write_config(tmp_path / "config.toml", url=nats.url, protocol="3.1.1")
        agent = AgentProcess(cfg)
        agent_factory.append(agent)
        agent.start()
        # the collector's session starts when it subscribes: probe until something arrives
        def probed() -> bool:
            emit_lines(cfg, [json.dumps({"type": "o2o.probe", "data": {}})])
            time.sleep(0.2)
            return store.count() >= 1
        wait_for(probed, 30, what="the collector on NATS")
        emit_lines(cfg, [json.dumps({"type": "o2o.kiosk.view", "data": {"i": i}})
                         for i in range(100)])
        wait_for(lambda: store.count("o2o.kiosk.view") == 100, 30,
                 what=lambda: f"{store.count('o2o.kiosk.view')} of 100 views")
        assert agent.stop() == 0
        assert all(r["duplicates"] == 0 for r in store.report())
    finally:
        collector.send_signal(signal.SIGTERM)
        _, err = collector.communicate(timeout=30)
        store.close()
    assert "Traceback" not in err, err
