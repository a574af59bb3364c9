"""The fleet's upstream: a 3-node NATS cluster, MQTT on every node, streams replicated on all
three. What a node acknowledged is still delivered after that node is SIGKILLed, to a
collector whose kept session moved to another node."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulators.brokers import BrokerUnavailable
from simulators.cluster import NatsCluster
from tests.conftest import wait_for


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


def _client(cid: str) -> mqtt.Client:
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311,
                       clean_session=False)


def test_acknowledged_messages_survive_a_node_sigkill(cluster: NatsCluster) -> None:
    got: set[int] = set()
    lock = threading.Lock()
    subscribed = threading.Event()
    present: list[bool] = []

    def on_message(c: Any, u: Any, msg: Any) -> None:
        with lock:
            got.update(json.loads(msg.payload))

    def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        present.append(bool(flags.session_present))
        if not flags.session_present:
            c.subscribe("fleet/+/events", qos=1)

    # the collector's session is made on n2, then it goes away: messages queue for it
    sub = _client("collector")
    sub.on_connect = on_connect
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect("127.0.0.1", cluster.ports[1])
    sub.loop_start()
    assert subscribed.wait(30)
    sub.disconnect()
    sub.loop_stop()

    pub = _client("store-1")
    pub.connect("127.0.0.1", cluster.ports[0])
    pub.loop_start()
    infos = [pub.publish(f"fleet/s{i % 7}/events", json.dumps(list(range(i * 10, i * 10 + 10))),
                         qos=1) for i in range(300)]
    for info in infos:
        info.wait_for_publish(30)
    pub.disconnect()
    pub.loop_stop()
    cluster.kill(0)  # the node that acknowledged every one of them

    sub = _client("collector")
    sub.on_connect = on_connect
    sub.on_message = on_message
    # n3 may close it until the cluster has a new leader for the sessions: try again soon
    sub.reconnect_delay_set(0.1, 1.0)
    sub.connect("127.0.0.1", cluster.ports[2])
    sub.loop_start()
    try:
        wait_for(lambda: len(got) >= 3000, 60, what=lambda: f"{len(got)} of 3000 delivered")
    finally:
        sub.disconnect()
        sub.loop_stop()
    assert got == set(range(3000))
    assert present[-1] is True  # the session moved with the cluster, not lost with n1
    cluster.restart(0)  # back into the cluster, current with it
    assert all(n.healthy() for n in cluster.nodes)
