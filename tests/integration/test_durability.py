"""Nothing committed is lost: brokers killed and restarted, the agent itself killed."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

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
) -> tuple[list[set[str]], Subscriber, AgentProcess]:
    """ROUNDS rounds of PER_ROUND events, the broker killed (or stopped) and started again
    in each while the round is drained; the ids committed in each round."""
    sub = Subscriber(broker.url, TOPIC, "collector", v5=(protocol == "5"))
    subscribers.append(sub)
    assert sub.connected.wait(15)
    cfg = write_config(tmp_path / "config.toml", url=broker.url, protocol=protocol)
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    rounds: list[set[str]] = []
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
        rounds.append(set(got))
    wait_for(lambda: agent.status()["outbox"]["depth"] == 0, 120, what="outbox drained")
    return rounds, sub, agent


def _missing_by_round(rounds: list[set[str]], sub: Subscriber) -> str:
    """How many events of each round (one broker restart each) never arrived."""
    have = sub.unique()
    missing = {r: len(ids - have) for r, ids in enumerate(rounds)}
    return ", ".join(f"round {r}: {n}" for r, n in missing.items() if n) or "none"


def _never_arrived(ids: set[str], sub: Subscriber, grace_s: float = 30.0) -> set[str]:
    """What of `ids` the subscriber still lacks after `grace_s` for redelivery (ack_wait 2 s):
    what the broker lost."""
    deadline = time.monotonic() + grace_s
    while not ids <= sub.unique() and time.monotonic() < deadline:
        time.sleep(0.2)
    return ids - sub.unique()


def _assert_agent_let_go_only_on_puback(agent: AgentProcess, committed: set[str]) -> None:
    st = agent.status()
    # the agent let go of a row only after the broker's PUBACK: whatever did not arrive was
    # acknowledged by the broker and then lost by it
    assert st["outbox"]["depth"] == 0
    assert not st["outbox"]["dropped"] and not st["outbox"]["dropped_this_boot"]
    assert st["uplink"]["acked_events"] >= len(committed)


def test_nats_jetstream_sigkill_loss_is_the_brokers(
    tmp_path: Path, nats: PrivateNats, agent_factory: list[AgentProcess],
    subscribers: list[Subscriber],
) -> None:
    rounds, sub, agent = _run_broker_kills(tmp_path, nats, "3.1.1", True,
                                           agent_factory, subscribers)
    committed = set().union(*rounds)
    _assert_agent_let_go_only_on_puback(agent, committed)
    lost = _never_arrived(committed, sub)
    print(f"\nNATS SIGKILL x{ROUNDS}: {len(committed)} committed and PUBACKed, {len(lost)} "
          f"lost by the broker (by round: {_missing_by_round(rounds, sub)}), "
          f"{sub.duplicates()} duplicates, {sub.health()}")
    assert agent.stop() == 0


def _bare_paho_rounds(broker: PrivateBroker, hard: bool) -> tuple[set[str], int]:
    """The baseline: a bare paho QoS 1 publisher (persistent session, 20 in flight) sending
    the same ROUNDS x PER_ROUND events in batches of 500 through the same restarts; the ids
    the broker PUBACKed and how many of them never arrived."""
    sub = Subscriber(broker.url, TOPIC, "collector-bare", v5=False)
    assert sub.connected.wait(15)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bare-publisher",
                      protocol=mqtt.MQTTv311, clean_session=False)
    pub.max_inflight_messages_set(20)
    pub.reconnect_delay_set(0.1, 1.0)
    sent: dict[int, list[str]] = {}  # message id -> event ids (200 publishes: no id reuse)
    acked_mids: set[int] = set()
    pub.on_publish = lambda _c, _u, mid, _rc, _p: acked_mids.add(mid)
    host, port = broker.url.split("//", 1)[1].rsplit(":", 1)
    pub.connect(host, int(port))
    pub.loop_start()
    try:
        for _ in range(ROUNDS):
            for b in range(PER_ROUND // 500):
                ids = [uuid.uuid4().hex for _ in range(500)]
                info = pub.publish(TOPIC, json.dumps([{"id": i} for i in ids]), qos=1)
                sent[info.mid] = ids
                if b == 5:  # restart while the round is in flight
                    broker.restart(hard)
        wait_for(lambda: acked_mids >= sent.keys(), 120, what="the bare publisher's PUBACKs")
        acked = {i for mid in acked_mids for i in sent[mid]}
        lost = len(_never_arrived(acked, sub))
    finally:
        pub.disconnect()  # first: loop_stop alone waits out the loop's 1 s select
        pub.loop_stop()
        sub.close()
    return acked, lost


@pytest.mark.slow
@pytest.mark.parametrize("hard", [False, True], ids=["sigterm", "sigkill"])
def test_nats_jetstream_restarts_the_agent_against_a_bare_publisher(
    tmp_path: Path, nats: PrivateNats, agent_factory: list[AgentProcess],
    subscribers: list[Subscriber], hard: bool,
) -> None:
    """What NATS loses of what it acknowledged, for the agent and for bare paho in the same
    run: the agent's part is to let go only on PUBACK; the rest is the broker's."""
    rounds, sub, agent = _run_broker_kills(tmp_path, nats, "3.1.1", hard,
                                           agent_factory, subscribers)
    committed = set().union(*rounds)
    _assert_agent_let_go_only_on_puback(agent, committed)
    agent_lost = len(_never_arrived(committed, sub))
    assert agent.stop() == 0
    bare_acked, bare_lost = _bare_paho_rounds(nats, hard)
    how = "SIGKILL" if hard else "SIGTERM"
    print(f"\nNATS {how} x{ROUNDS}: agent {agent_lost} of {len(committed)} PUBACKed events "
          f"lost by the broker; bare paho {bare_lost} of {len(bare_acked)}")
    assert len(bare_acked) == ROUNDS * PER_ROUND


def test_mosquitto_sigterm_restart_loses_nothing(
    tmp_path: Path, mosquitto: PrivateMosquitto, agent_factory: list[AgentProcess],
    subscribers: list[Subscriber],
) -> None:
    rounds, sub, agent = _run_broker_kills(tmp_path, mosquitto, "5", False,
                                           agent_factory, subscribers)
    committed = set().union(*rounds)
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
    rounds, sub, agent = _run_broker_kills(tmp_path, mosquitto, "5", True,
                                           agent_factory, subscribers)
    committed = set().union(*rounds)
    _assert_agent_let_go_only_on_puback(agent, committed)
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

