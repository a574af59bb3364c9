"""Hostile broker answers: every MQTT 5 PUBACK reason code, dropped connections, refused
CONNECTs, a 100 MiB downstream message, a TLS URL to a plaintext port.

What a user relies on: an event leaves the outbox only on a success PUBACK or as a counted
drop (outbox + acknowledged + counted drops == emitted), a refusal never makes the agent
spin or hammer the broker, memory and threads stay bounded, the status says what happened.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.bus.client import BusClient
from agent.uplink.client import MAX_DOWNSTREAM_PACKET
from simulators.brokers import PrivateMosquitto, free_port
from tests.abuse.conftest import ABUSE
from tests.abuse.hostile_broker import (
    DROP,
    IGNORE,
    MAXIMUM_PACKET_SIZE,
    RECEIVE_MAXIMUM,
    HostileBroker,
    Publish,
)
from tests.conftest import AgentProcess, wait_for

PERMANENT = {0x95: "too_large", 0x99: "payload_format_invalid"}
TEMPORARY = {0x80: "unspecified", 0x83: "implementation_specific", 0x87: "not_authorized",
             0x90: "topic_name_invalid", 0x91: "packet_id_in_use",
             0x93: "receive_maximum_exceeded", 0x97: "quota_exceeded"}


def config(dirpath: Path, url: str, *, protocol: str = "5", mqtt: str = "",
           extra: str = "") -> Path:
    dirpath.mkdir(parents=True, exist_ok=True)
    cfg = dirpath / "config.toml"
    cfg.write_text(f"""
[device]
store = "store-1"
id = "dev-1"

[outbox]
path = "{dirpath / 'outbox.db'}"

[mqtt]
url = "{url}"
protocol = "{protocol}"
{mqtt or 'backoff_min_s = 0.05' + chr(10) + 'backoff_max_s = 0.5'}

[bus]
socket = "{dirpath / 'agent.sock'}"
{extra}
""")
    return cfg


@pytest.fixture
def broker() -> Iterator[HostileBroker]:
    with HostileBroker() as b:
        yield b


def start(agents: list[AgentProcess], cfg: Path) -> AgentProcess:
    agent = AgentProcess(cfg)
    agents.append(agent)
    agent.start()
    return agent


def emit(agent: AgentProcess, n: int, etype: str = "o2o.kiosk.checkin") -> set[str]:
    ids: set[str] = set()
    with BusClient(agent.socket, timeout=30) as c:
        for i in range(0, n, 500):
            got = c.emit([{"type": etype, "data": {"i": j}} for j in range(i, min(n, i + 500))])
            ids.update(x for x in got if x)
    assert len(ids) == n
    return ids


def in_outbox(agent: AgentProcess) -> set[str]:
    db = sqlite3.connect(f"file:{agent.config.parent / 'outbox.db'}?mode=ro", uri=True)
    try:
        return {json.loads(b)["id"] for (b,) in db.execute("SELECT body FROM events")}
    finally:
        db.close()


def uplink(agent: AgentProcess) -> dict[str, Any]:
    return agent.status()["uplink"]  # type: ignore[no-any-return]


def refused_alone_for_good(broker: HostileBroker) -> set[str]:
    return {ids[0] for rc, ids in broker.refused if rc in PERMANENT and len(ids) == 1}


def check_nothing_lost(agent: AgentProcess, broker: HostileBroker, emitted: set[str]) -> None:
    """Each emitted event is in the outbox, acknowledged with success, or a counted drop
    of an event the broker refused alone as too large / malformed, or closed the connection
    on when sent alone (three times in a row: agent/uplink/closures.py)."""
    dropped = emitted - in_outbox(agent) - broker.success_ids
    allowed = refused_alone_for_good(broker) | broker.closed_alone
    assert dropped <= allowed, "events gone without a success PUBACK"
    # every event gone without success is counted (the agent's own drop reports too)
    counted = sum(uplink(agent)["dropped"].values())
    assert counted == len(broker.seen_ids - in_outbox(agent) - broker.success_ids)


def cpu_seconds(pid: int) -> float:
    import os

    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def proc_value(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


# --- each reason code -----------------------------------------------------------------------

@pytest.mark.parametrize("rc", [0x00, 0x10, *PERMANENT, *TEMPORARY],
                         ids=lambda rc: f"0x{rc:02x}")
def test_each_puback_reason_code(tmp_path: Path, broker: HostileBroker, rc: int,
                                 agent_factory: list[AgentProcess]) -> None:
    broker.set_answer(lambda p: rc)
    agent = start(agent_factory, config(tmp_path, broker.url, mqtt=(
        "batch_max_events = 10\nbackoff_min_s = 0.1\nbackoff_max_s = 0.5")))
    ids = emit(agent, 40)
    if rc < 0x80:  # success: gone from the outbox, all of it upstream
        wait_for(lambda: not (ids & in_outbox(agent)), 20, what="outbox drained")
        assert ids <= broker.success_ids
    elif rc in PERMANENT:  # halved down to single events, each dropped and counted
        wait_for(lambda: uplink(agent)["dropped"].get(PERMANENT[rc], 0) >= 40, 20,
                 what=lambda: f"40 drops counted: {uplink(agent)}")
        assert refused_alone_for_good(broker) >= ids
        assert uplink(agent)["split_batches"] > 0
    else:  # about the connection: every event kept, retried after a pause, no hot loop
        wait_for(lambda: len(broker.refused) >= 3, 20, what="three refusals")
        t0, n0 = time.monotonic(), len(broker.answered)
        wait_for(lambda: time.monotonic() - t0 > 2.0, 5)
        rate = (len(broker.answered) - n0) / (time.monotonic() - t0)
        assert rate < 20, f"{rate:.0f} refused messages a second: the agent hammers the broker"
        assert in_outbox(agent) >= ids and not uplink(agent)["dropped"]
        st = uplink(agent)
        assert TEMPORARY[rc] in st["last_refusal"] and st["refusals"][TEMPORARY[rc]] >= 3
        if rc == 0x93:  # more in flight than the broker takes: fewer, on this connection
            assert st["inflight_window"] < 16
    check_nothing_lost(agent, broker, ids)
    # whatever it was, once the broker takes messages everything kept goes upstream
    broker.set_answer(lambda p: 0x00)
    wait_for(lambda: not in_outbox(agent), 20, what="outbox drained after the refusals")
    check_nothing_lost(agent, broker, ids)
    if rc in PERMANENT:  # the drops are told upstream too
        wait_for(lambda: "o2o.agent.uplink.dropped" in broker.success_types, 20)
    counted = uplink(agent)
    wait_for(lambda: uplink(agent)["refused_batches"] == len(broker.refused), 10)
    assert sum(counted["refusals"].values()) == counted["refused_batches"]
    assert agent.stop() == 0


def test_receive_maximum_of_the_broker_is_respected(
    tmp_path: Path, agent_factory: list[AgentProcess],
) -> None:
    with HostileBroker(answer=lambda p: IGNORE, connack_props={RECEIVE_MAXIMUM: 2}) as b:
        agent = start(agent_factory, config(tmp_path, b.url, mqtt="batch_max_events = 5"))
        emit(agent, 100)
        wait_for(lambda: len(b.answered) >= 2, 10)
        t0 = time.monotonic()
        wait_for(lambda: time.monotonic() - t0 > 1.0, 5)
        assert len(b.answered) == 2  # never more unacknowledged than it announced
        assert uplink(agent)["inflight_window"] == 2
        assert agent.stop() == 0


def test_quota_exceeded_keeps_2000_checkins(tmp_path: Path, broker: HostileBroker,
                                            agent_factory: list[AgentProcess]) -> None:
    # measured before: 0x97 was taken for "too large": split to single events, then every
    # one deleted; 2,000 check-ins gone in ~5 s, no drop counted
    broker.set_answer(lambda p: 0x97)
    port = free_port()
    agent = start(agent_factory, config(tmp_path, broker.url,
                                        extra=f'[metrics]\nlisten = "127.0.0.1:{port}"'))
    ids = emit(agent, 2000)
    wait_for(lambda: len(broker.refused) >= 10, 20, what="ten refusals")
    assert in_outbox(agent) >= ids
    st = uplink(agent)
    assert not st["dropped"] and st["split_batches"] == 0
    assert "quota" in st["last_error"] or "quota" in st["last_refusal"]
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    assert b'o2o_uplink_refusals_total{reason="quota_exceeded"}' in page
    broker.set_answer(lambda p: 0x00)
    wait_for(lambda: ids <= broker.success_ids, 30, what="all 2000 upstream")
    assert agent.stop() == 0


# --- refused batches and CPU --------------------------------------------------------------

def test_split_halves_are_sent_and_the_drain_stays_idle(
    tmp_path: Path, broker: HostileBroker, agent_factory: list[AgentProcess],
) -> None:
    # refuse each message of more than one event as too large: the halves must be sent, and
    # the drain must not spin while they are in flight or after
    broker.set_answer(lambda p: 0x95 if p.events > 1 else 0x00)
    agent = start(agent_factory, config(tmp_path, broker.url))
    assert agent.proc is not None
    sent: set[str] = set()
    for _ in range(20):  # one refused batch at a time, nothing else in flight
        ids = emit(agent, 2)
        sent |= ids
        wait_for(lambda ids=ids: ids <= broker.success_ids, 10,  # type: ignore[misc]
                 what="both halves acknowledged")
    cpu0, t0 = cpu_seconds(agent.proc.pid), time.monotonic()
    wait_for(lambda: time.monotonic() - t0 > 3.0, 5)
    cpu = cpu_seconds(agent.proc.pid) - cpu0
    assert cpu < 0.5, f"{cpu:.2f} CPU seconds in 3 s of idle after splits"
    # after the first refusals the agent sends smaller batches itself: fewer splits
    assert uplink(agent)["split_batches"] >= 1 and not uplink(agent)["dropped"]
    check_nothing_lost(agent, broker, sent)
    assert agent.stop() == 0


def test_batch_size_grows_back_after_a_flaky_broker(
    tmp_path: Path, broker: HostileBroker, agent_factory: list[AgentProcess],
) -> None:
    # a flaky spell: the broker closes the connection on any message of more than 3 events
    flaky = threading.Event()
    flaky.set()
    broker.set_answer(lambda p: DROP if flaky.is_set() and p.events > 3 else 0x00)
    agent = start(agent_factory, config(tmp_path, broker.url))
    ids = emit(agent, 600)
    wait_for(lambda: ids <= broker.success_ids, 60, what="all through the flaky spell")
    assert uplink(agent)["batch_max_events"] <= 3
    flaky.clear()
    for _ in range(40):  # a healthy broker: the size doubles back to 500, for good
        if uplink(agent)["batch_max_events"] == 500:
            break
        more = emit(agent, 400)
        wait_for(lambda more=more: more <= broker.success_ids, 30,  # type: ignore[misc]
                 what="a round upstream")
    st = uplink(agent)
    assert (st["batch_max_events"], st["batch_max_bytes"]) == (500, 128 * 1024)
    assert agent.stop() == 0


# --- connections: refusals, threads, a damaged outbox's reads -------------------------------

def test_refused_connects_leak_no_threads(tmp_path: Path,
                                          agent_factory: list[AgentProcess]) -> None:
    with HostileBroker(refuse_connect=0x87) as b:
        agent = start(agent_factory, config(tmp_path, b.url, mqtt=(
            "backoff_min_s = 0.01\nbackoff_max_s = 0.05")))
        assert agent.proc is not None
        wait_for(lambda: len(b.connects) >= 5, 20)
        threads0 = len(list(Path(f"/proc/{agent.proc.pid}/task").iterdir()))
        wait_for(lambda: len(b.connects) >= 55, 30, what="50 more attempts")
        threads = len(list(Path(f"/proc/{agent.proc.pid}/task").iterdir()))
        assert threads <= threads0
        err = uplink(agent)["last_error"]
        assert "refused the connection" in err and "username/password" in err
        assert agent.stop() == 0


# --- downstream size ----------------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_huge_downstream_message_is_dropped_unread(
    tmp_path: Path, broker: HostileBroker, agent_factory: list[AgentProcess], protocol: str,
) -> None:
    agent = start(agent_factory, config(tmp_path, broker.url, protocol=protocol))
    assert agent.proc is not None
    wait_for(lambda: uplink(agent)["state"] == "connected", 10)
    if protocol == "5":  # the broker is told the limit: the largest content blob
        assert broker.connects[0].props[MAXIMUM_PACKET_SIZE] == MAX_DOWNSTREAM_PACKET
    peak0 = proc_value(agent.proc.pid, "VmHWM")
    # measured before: +300 MiB of RSS for this one message
    broker.send_downstream("o2o/v1/store-1/all/blob/" + "0" * 64, 100 * 1024 * 1024)
    wait_for(lambda: uplink(agent)["oversized_downstream"] == 1, 30)
    grew_kib = proc_value(agent.proc.pid, "VmHWM") - peak0
    assert grew_kib < 16 * 1024, f"peak RSS grew {grew_kib} KiB for a dropped message"
    # answered, so the broker does not send it again: MQTT 5 says "not accepted"
    wait_for(lambda: broker.downstream_acks, 10)
    assert broker.downstream_acks[0][2] == (0x83 if protocol == "5" else 0)
    ids = emit(agent, 5)  # and the connection goes on
    wait_for(lambda: ids <= broker.success_ids, 10)
    assert len(broker.connects) == 1
    assert agent.stop() == 0


# --- TLS to a plaintext port ------------------------------------------------------------

def test_tls_url_to_a_plaintext_port_says_so(tmp_path: Path, mosquitto: PrivateMosquitto,
                                             agent_factory: list[AgentProcess]) -> None:
    agent = start(agent_factory, config(tmp_path, f"mqtts://127.0.0.1:{mosquitto.port}"))
    wait_for(lambda: uplink(agent)["last_error"] != "", 20)
    err = uplink(agent)["last_error"]
    assert "TLS handshake" in err and "is this a TLS port?" in err and "\n" not in err
    assert "reset" not in err.split("(")[0]
    assert agent.stop() == 0
    assert "is this a TLS port?" in agent.log.read_text()


# --- the will and the death message -------------------------------------------------------

def test_will_is_armed_for_each_connection_and_death_has_the_stop_time(
    tmp_path: Path, broker: HostileBroker, agent_factory: list[AgentProcess],
) -> None:
    agent = start(agent_factory, config(tmp_path, broker.url))
    wait_for(lambda: uplink(agent)["connects"] == 1, 10)
    first = json.loads(broker.connects[0].will_payload or b"{}")
    dropped_at = time.time()
    broker.drop_connections()
    wait_for(lambda: len(broker.connects) >= 2 and uplink(agent)["state"] == "connected", 10)
    will = json.loads(broker.connects[-1].will_payload or b"{}")
    # the will is published by the broker later: it carries the start of its connection
    assert will["state"] == "offline" and will["cause"] == "connection-lost"
    assert "time" not in will and will["connected_since"] >= dropped_at > first["connected_since"]
    stopped_at = time.time()
    assert agent.stop() == 0
    death = [json.loads(p) for t, p in broker.state_messages if b'"offline"' in p]
    assert death and death[-1]["cause"] == "stopped" and death[-1]["time"] >= stopped_at


# --- hypothesis: any sequence of broker answers -------------------------------------------

ANSWERS = st.sampled_from([0x00, 0x10, *PERMANENT, *TEMPORARY, DROP])


@ABUSE
@given(script=st.lists(ANSWERS, max_size=12), events=st.integers(1, 40))
def test_any_sequence_of_answers_loses_nothing(
    tmp_path: Path, broker: HostileBroker, agent_factory: list[AgentProcess],
    script: list[int | str], events: int,
) -> None:
    if not agent_factory:
        start(agent_factory, config(tmp_path, broker.url, mqtt=(
            "batch_max_events = 8\nbackoff_min_s = 0.01\nbackoff_max_s = 0.05")))
    agent = agent_factory[0]
    emitted: set[str] = getattr(agent, "emitted", set())
    todo = list(script)

    def answer(p: Publish) -> int | str:
        return todo.pop(0) if todo else 0x00

    broker.set_answer(answer)
    emitted |= emit(agent, events)
    agent.emitted = emitted  # type: ignore[attr-defined]
    # drained: nothing waits to be sent (a row acknowledged with success may stay up to 2 s,
    # its delete held for the next events' transaction: agent/outbox/acks.py)
    wait_for(lambda: not in_outbox(agent) - broker.success_ids, 30,
             what=lambda: f"drained; left {len(in_outbox(agent) - broker.success_ids)}, "
                          f"script {todo}")
    todo.clear()
    wait_for(lambda: uplink(agent)["refused_batches"] == len(broker.refused), 10)
    check_nothing_lost(agent, broker, emitted)
