"""Nothing committed is lost: brokers killed and restarted, the agent itself killed."""

from __future__ import annotations

import threading
from pathlib import Path

from agent.bus.client import BusClient
from agent.errors import AgentError
from simulators.brokers import PrivateBroker, PrivateMosquitto, PrivateNats
from tests.conftest import AgentProcess, wait_for, write_config
from tests.integration.conftest import Subscriber

TOPIC = "o2o/v1/store-1/dev-1/events"
ROUNDS = 10
PER_ROUND = 10_000


def _emit_round(sock: Path, n: int, round_no: int, out: list[str]) -> None:
    with BusClient(sock, timeout=120) as bus:
        for k in range(0, n, 500):
            out.extend(bus.emit([{"type": "o2o.nfc.tap", "data": {"r": round_no, "k": k + j}}
                                 for j in range(500)]))


def _run_broker_kills(
    tmp_path: Path, broker: PrivateBroker, protocol: str, hard: bool,
    agent_factory: list[AgentProcess], subscribers: list[Subscriber],
) -> tuple[set[str], Subscriber, AgentProcess]:
    sub = Subscriber(broker.url, TOPIC, "collector", v5=(protocol == "5"))
    subscribers.append(sub)
    assert sub.connected.wait(15)
    cfg = write_config(tmp_path / "config.toml", url=broker.url, protocol=protocol)
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    committed: list[str] = []
    for r in range(ROUNDS):
        got: list[str] = []
        t = threading.Thread(target=_emit_round, args=(agent.socket, PER_ROUND, r, got))
        t.start()
        before = len(sub.unique())
        # kill while this round is being captured and drained
        wait_for(lambda b=before, t=t: len(sub.unique()) > b + 500 or not t.is_alive(), 60,
                 what="drain in progress")
        if hard:
            broker.kill()
        else:
            broker.stop()
        broker.start()
        t.join(120)
        assert len(got) == PER_ROUND
        committed.extend(got)
    wait_for(lambda: agent.status()["outbox"]["depth"] == 0, 120, what="outbox drained")
    return set(committed), sub, agent


def test_nats_jetstream_sigkill_loses_nothing(
    tmp_path: Path, nats: PrivateNats, agent_factory: list[AgentProcess],
    subscribers: list[Subscriber],
) -> None:
    committed, sub, agent = _run_broker_kills(tmp_path, nats, "3.1.1", True,
                                              agent_factory, subscribers)
    wait_for(lambda: committed <= sub.unique(), 120,
             what=lambda: f"every committed id upstream: {len(committed - sub.unique())} missing, "
                          f"{agent.status()['uplink']}; {sub.health()}")
    print(f"\nNATS SIGKILL x{ROUNDS}: {len(committed)} committed, all received, "
          f"{sub.duplicates()} duplicates")
    assert agent.stop() == 0


def test_mosquitto_sigterm_restart_loses_nothing(
    tmp_path: Path, mosquitto: PrivateMosquitto, agent_factory: list[AgentProcess],
    subscribers: list[Subscriber],
) -> None:
    committed, sub, agent = _run_broker_kills(tmp_path, mosquitto, "5", False,
                                              agent_factory, subscribers)
    wait_for(lambda: committed <= sub.unique(), 120,
             what=lambda: f"every committed id upstream: {len(committed - sub.unique())} "
                          f"missing; {sub.health()}")
    print(f"\nmosquitto SIGTERM x{ROUNDS}: {len(committed)} committed, all received, "
          f"{sub.duplicates()} duplicates")
    assert agent.stop() == 0


def test_mosquitto_sigkill_loss_is_the_brokers(
    tmp_path: Path, mosquitto: PrivateMosquitto, agent_factory: list[AgentProcess],
    subscribers: list[Subscriber],
) -> None:
    committed, sub, agent = _run_broker_kills(tmp_path, mosquitto, "5", True,
                                              agent_factory, subscribers)
    st = agent.status()
    # the agent let go of a row only after the broker's PUBACK: whatever did not arrive was
    # acknowledged by the broker and then lost in its memory
    assert st["outbox"]["depth"] == 0
    assert not st["outbox"]["dropped"] and not st["outbox"]["dropped_this_boot"]
    assert st["uplink"]["acked_events"] >= len(committed)
    lost = committed - sub.unique()
    print(f"\nmosquitto SIGKILL x{ROUNDS}: {len(committed)} committed and PUBACKed, "
          f"{len(lost)} lost by the broker, {sub.duplicates()} duplicates")
    assert agent.stop() == 0


def test_agent_sigkill_during_ingest_and_drain(
    tmp_path: Path, mosquitto: PrivateMosquitto, agent_factory: list[AgentProcess],
    subscribers: list[Subscriber],
) -> None:
    sub = Subscriber(mosquitto.url, TOPIC, "collector-b")
    subscribers.append(sub)
    assert sub.connected.wait(10)
    cfg = write_config(tmp_path / "config.toml", url=mosquitto.url)
    acked: list[str] = []
    for r in range(ROUNDS):
        agent = AgentProcess(cfg)
        agent_factory.append(agent)
        agent.start()
        stop = threading.Event()
        start_count = len(acked)

        def emitter(round_no: int = r, agent: AgentProcess = agent,
                    stop: threading.Event = stop) -> None:
            try:
                with BusClient(agent.socket, timeout=30) as bus:
                    k = 0
                    while not stop.is_set():
                        acked.extend(bus.emit([{"type": "o2o.qr.scan",
                                                "data": {"r": round_no, "k": k + j}}
                                               for j in range(200)]))
                        k += 200
            except (AgentError, OSError):
                return  # the agent died under us: what was acknowledged must arrive

        t = threading.Thread(target=emitter)
        t.start()
        wait_for(lambda s=start_count: len(acked) > s + 3000, 60, what="ingest")
        agent.kill()
        stop.set()
        t.join(30)
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    wait_for(lambda: set(acked) <= sub.unique(), 120, what="every acknowledged emit upstream")
    print(f"\nagent SIGKILL x{ROUNDS}: {len(acked)} acknowledged emits, all received, "
          f"{sub.duplicates()} duplicates")
    assert agent.stop() == 0

