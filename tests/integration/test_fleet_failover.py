"""The load balancer that real agents reach the cluster through: each connection goes to the
next node that answers, and ends when its node dies, so the client's reconnect lands on a
live one. Two private Mosquittos play the nodes."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulators.brokers import PrivateMosquitto, free_port
from simulators.fleet.failover import Failover
from tests.conftest import need, wait_for


def test_a_connection_moves_to_a_live_node(tmp_path: Path) -> None:
    need("mosquitto", "mosquitto")
    a, b = PrivateMosquitto(tmp_path / "a"), PrivateMosquitto(tmp_path / "b")
    a.start()
    b.start()
    dead = free_port()  # a node that is down from the start: skipped, not waited for
    front = Failover([dead, a.port, b.port]).start()
    accepted: list[int] = []
    lost = threading.Event()

    def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        if not rc.is_failure:
            accepted.append(front.connections[-1])

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="agent")
    client.on_connect = on_connect
    client.on_disconnect = lambda *args: lost.set()
    client.reconnect_delay_set(0.1, 0.5)
    try:
        client.connect("127.0.0.1", front.port)
        client.loop_start()
        wait_for(lambda: len(accepted) == 1, 10, what="the first connection")
        assert accepted == [a.port]  # the dead node first in turn, then the next
        a.kill()  # its node dies: the client's connection ends with it
        assert lost.wait(10)
        wait_for(lambda: len(accepted) == 2, 10, what=lambda: f"reconnected: {accepted}")
        assert accepted[-1] == b.port
        # published through the new node: it arrives
        info = client.publish("t", b"x", qos=1)
        info.wait_for_publish(10)
        assert info.is_published()
    finally:
        client.loop_stop()
        client.disconnect()
        front.stop()
        a.kill()
        b.kill()
