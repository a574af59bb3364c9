"""The fleet end to end: virtual stores speaking the agent's wire protocol and real agents
among them, collectors writing to PostgreSQL, faults on the way; every event every store
committed is stored exactly once, no seq missing, and what is missing is attributed (lost
after a PUBACK, or still unsent)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.collector.store import EventStore
from simulators.brokers import BrokerUnavailable
from simulators.cluster import NatsCluster
from simulators.fleet.check import FleetCheck, check
from simulators.fleet.failover import Failover
from simulators.fleet.fleet import Fleet
from simulators.fleet.store import VirtualStore
from simulators.netcut import NetworkCut
from tests.conftest import CLI, ROOT, AgentProcess, emit_lines, wait_for, write_config
from tests.integration.test_fleet_collectors import pg_url

__all__ = ["pg_url"]  # the fixture, shared


def _collector(url: str, db: str, n: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, "collect", "--broker", url, "--db", db,
                             "--client-id", f"fleet-collector-{n}", *extra], cwd=ROOT,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _stop(collectors: list[subprocess.Popen[str]]) -> list[str]:
    errs = []
    for c in collectors:
        if c.poll() is None:
            c.send_signal(signal.SIGTERM)
        errs.append(c.communicate(timeout=30)[1])
    return errs


def _subscribed(port: int, db: str, collectors: int = 1) -> None:
    """Until the collectors have subscribed: what is published before goes to nobody."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    store = EventStore(db)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet-probe")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    sent = 0

    def probed() -> bool:
        nonlocal sent
        sent += 1
        pub.publish("o2o/v1/probe/pi/events", json.dumps([{
            "id": f"P{sent}", "source": "o2o-edge://probe/pi", "bootid": "P", "seq": sent,
            "type": "o2o.probe", "time": "2026-12-02T10:00:00Z"}]), qos=1).wait_for_publish(10)
        time.sleep(0.2)
        return store.count("o2o.probe") >= 2 * collectors  # a round to each
    try:
        wait_for(probed, 30, what="the collectors subscribed")
    finally:
        pub.loop_stop()
        pub.disconnect()
        store.close()


def _state(proc: subprocess.Popen[str]) -> str:
    """A collector's state for a failing test: running, or how it ended and why."""
    if proc.poll() is None:
        return "running"
    return f"exited {proc.returncode}: {proc.communicate(timeout=10)[1][-1000:]}"


def _count_ids(db: str, ids: list[str]) -> int:
    import psycopg

    with psycopg.connect(db, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM events WHERE id = ANY(%s)", (ids,)).fetchone()
    return int(row[0]) if row else 0


async def _stored(db: str, fleet: Fleet, timeout: float) -> FleetCheck:
    """The check, repeated until it is exact or `timeout` (collectors still writing)."""
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(db, autocommit=True) as conn:
        while True:
            result = check(conn, fleet.stores)
            if result.exact or time.monotonic() > deadline:
                return result
            await asyncio.sleep(0.3)


def test_fifty_stores_through_a_collector_kill_and_a_network_cut(
        mosquitto: Any, pg_url: str) -> None:
    EventStore(pg_url).close()  # the tables, before collectors race to make them
    shared = ("--shared", "fleet")
    collectors = [_collector(mosquitto.url, pg_url, n, *shared) for n in range(2)]
    _subscribed(mosquitto.port, pg_url, 2)
    cut = NetworkCut("127.0.0.1", mosquitto.port).start()
    # a tenth of the stores reach the broker through a store router that goes dead
    fleet = Fleet([mosquitto.port], 50, rate=2.0, backoff_max_s=2.0,
                  port_of=lambda i: [cut.port] if i % 10 == 0 else [mosquitto.port])

    async def run() -> FleetCheck:
        await fleet.start(ramp_s=1.0)
        await fleet.wait(lambda: fleet.connected() == 50, 20, "not all connected")
        fleet.feed()
        await asyncio.sleep(2)
        collectors[1].send_signal(signal.SIGKILL)
        cut.cut()
        await asyncio.sleep(3)
        collectors[1].communicate(timeout=10)
        collectors[1] = _collector(mosquitto.url, pg_url, 1, *shared)  # its session again
        cut.restore()
        await asyncio.sleep(1)
        fleet.feed(False)
        await fleet.drain(30)
        await fleet.stop()
        return await _stored(pg_url, fleet, 30)

    try:
        result = asyncio.run(run())
    finally:
        errs = _stop(collectors)
        cut.stop()
    assert all("Traceback" not in e for e in errs), errs
    assert result.committed >= 400, result.line()
    assert result.exact, result.line()
    # both protocols were played: MQTT 5 and 3.1.1 stores alike
    assert {s.v5 for s in fleet.stores} == {True, False}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    try:
        c = NatsCluster(tmp_path / "cluster")
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))
    c.start()
    yield c
    for node in c.nodes:
        node.kill()


def test_fifty_stores_and_two_agents_on_the_cluster_through_node_and_collector_kills(
        cluster: NatsCluster, pg_url: str, tmp_path: Path,
        agent_factory: list[AgentProcess]) -> None:
    EventStore(pg_url).close()
    # NATS 2.9's MQTT has no shared subscriptions: one collector, its session on node 3
    collectors = [_collector(cluster.nodes[2].url, pg_url, 0, "--protocol", "3.1.1")]
    _subscribed(cluster.ports[1], pg_url)
    fleet = Fleet(cluster.ports, 50, v5_share=0.0, rate=2.0, backoff_max_s=2.0)
    n1 = cluster.ports[0]
    on_n1: list[VirtualStore] = []
    # real agents have one broker URL: a load balancer in front of the nodes, n1 first
    front = Failover(cluster.ports).start()
    configs = []
    for i in range(2):
        (tmp_path / f"a{i}").mkdir()
        configs.append(write_config(tmp_path / f"a{i}" / "config.toml", url=front.url,
                                    protocol="3.1.1", device=f"real-{i}"))
        agent_factory.append(AgentProcess(configs[-1]))
        agent_factory[-1].start()
    committed: list[str] = []

    async def emit(n: int) -> None:
        for cfg in configs:
            committed.extend(await asyncio.to_thread(emit_lines, cfg, [json.dumps(
                {"type": "o2o.kiosk.view", "data": {"i": i}}) for i in range(n)]))

    async def run() -> FleetCheck:
        await fleet.start(ramp_s=1.0)
        await fleet.wait(lambda: fleet.connected() == 50, 30, "not all connected")
        fleet.feed()
        await emit(100)
        on_n1.extend(s for s in fleet.stores if s.connected and s.stats.ports[-1] == n1)
        cluster.kill(0)  # the stores on it lose their node; they move to the next
        await emit(100)
        # the collector killed mid-run: what it read and had not acknowledged is sent
        # again to its session (after ack_wait) when it is back
        collectors[0].send_signal(signal.SIGKILL)
        await asyncio.to_thread(collectors[0].communicate, timeout=10)
        await asyncio.sleep(1)
        collectors[0] = _collector(cluster.nodes[2].url, pg_url, 0, "--protocol", "3.1.1")
        await asyncio.sleep(1)
        fleet.feed(False)
        await fleet.drain(60)
        await fleet.stop()
        return await _stored(pg_url, fleet, 60)

    try:
        result = asyncio.run(run())
        store = EventStore(pg_url)
        try:
            wait_for(lambda: store.count("o2o.kiosk.view") >= result.committed + 400, 60,
                     what=lambda: f"{store.count('o2o.kiosk.view') - result.committed} of "
                                  f"400 agent events stored; the agents' uplinks: "
                                  f"{[a.status().get('uplink') for a in agent_factory]}; "
                                  f"the cluster: {cluster.messages()}; the collector: "
                                  f"{_state(collectors[0])}")
            agents = [r for r in store.report() if "/real-" in r["source"]]
            found = _count_ids(pg_url, committed)
        finally:
            store.close()
        assert [a.stop() for a in agent_factory] == [0, 0]
    finally:
        errs = _stop(collectors)
        front.stop()
    assert all("Traceback" not in e for e in errs), errs
    assert result.committed >= 200, result.line()
    assert result.exact, result.line() + "\n" + cluster.messages()
    # the stores that were on n1 carried on through another node
    assert on_n1 and all(s.stats.ports[-1] != n1 for s in on_n1), [
        (s.store, s.stats.ports) for s in on_n1]
    # every event each real agent committed, once, its seq without a gap
    assert len(committed) == 400 and found == 400
    assert len(agents) == 2 and all(
        a["events"] == a["last_seq"] > 200 and a["first_seq"] == 1 and a["gaps"] == []
        for a in agents), agents
    assert n1 in front.connections[:2]  # one agent was on n1 when it died
