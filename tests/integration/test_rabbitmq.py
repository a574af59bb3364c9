"""The uplink against RabbitMQ's MQTT plugin (a private node: own name, ports and data)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from agent.bus.client import BusClient
from simulators.brokers import PrivateRabbitMQ
from tests.conftest import AgentProcess, wait_for, write_config
from tests.integration.conftest import Subscriber


def test_rabbitmq_mqtt_plugin_drains_and_survives_a_crash(
    tmp_path: Path, rabbit: PrivateRabbitMQ, agent_factory: list[AgentProcess],
    subscribers: list[Subscriber],
) -> None:
    # RabbitMQ 3.10's plugin speaks MQTT 3.1.1; a clean_session=false subscriber gets a
    # durable queue, and QoS 1 publishes are confirmed (PUBACK) once they are queued
    sub = Subscriber(rabbit.url, "o2o/v1/store-1/dev-1/#", "collector-rmq", v5=False)
    subscribers.append(sub)
    assert sub.connected.wait(20)
    cfg = write_config(tmp_path / "config.toml", url=rabbit.url, protocol="3.1.1")
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    committed: list[str] = []

    def emit(n: int, tag: int) -> None:
        with BusClient(agent.socket, timeout=60) as bus:
            for k in range(0, n, 500):
                committed.extend(bus.emit([{"type": "o2o.nfc.tap", "data": {"t": tag, "k": k + j}}
                                           for j in range(500)]))

    emit(5000, 0)
    wait_for(lambda: set(committed) <= sub.unique(), 60, what="events through RabbitMQ")
    wait_for(lambda: "o2o/v1/store-1/dev-1/state" in sub.retained, 20, what="birth")
    assert json.loads(sub.retained["o2o/v1/store-1/dev-1/state"])["state"] == "online"

    t = threading.Thread(target=emit, args=(20000, 1))
    t.start()
    wait_for(lambda: len(sub.unique()) > 7000 or not t.is_alive(), 60, what="drain under way")
    rabbit.kill()  # SIGKILL mid-drain
    killed_at = len(committed)
    rabbit.start()
    t.join(120)
    wait_for(lambda: agent.status()["outbox"]["depth"] == 0, 120, what="outbox drained")
    wait_for(lambda: set(committed) <= sub.unique(), 120,
             what=lambda: f"every committed id upstream (emitted {killed_at} at the kill): "
                          f"missing positions {_ranges(committed, sub.unique())}, "
                          f"{len(set(committed) - sub.unique())} "
                          f"of {len(committed)} missing, {sub.duplicates()} duplicates; "
                          f"{sub.health()}; queues: {rabbit.queues()}")
    print(f"\nRabbitMQ SIGKILL: {len(committed)} committed, all received, "
          f"{sub.duplicates()} duplicates")
    assert agent.stop() == 0


def _ranges(committed: list[str], got: set[str]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for i, c in enumerate(committed):
        if c not in got:
            if out and out[-1][1] == i - 1:
                out[-1] = (out[-1][0], i)
            else:
                out.append((i, i))
    return out[:10]
