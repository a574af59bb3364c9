"""The local bus under a hostile or careless client, against a real agent process.

After every case a user relies on the same things: the hostile request got one answer line
saying why, a normal event is still committed and answered, the outbox writer runs, the
refusal is counted in `status`, and no traceback reached the log.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.abuse.conftest import ABUSE
from tests.conftest import AgentProcess, wait_for, write_config


def _strict(text: str | bytes) -> Any:
    """JSON as a strict client reads it: NaN and Infinity are not numbers."""
    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} in an answer")
    return json.loads(text, parse_constant=no_constant)


class Raw:
    """A bus client that sends exactly the bytes it is given."""

    def __init__(self, path: Path, timeout: float = 15.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rb")

    def ask(self, line: bytes | str) -> dict[str, Any]:
        data = line.encode() if isinstance(line, str) else line
        self.sock.sendall(data.rstrip(b"\n") + b"\n")
        return self.answer()

    def answer(self) -> dict[str, Any]:
        got = self.file.readline()
        assert got, "the agent closed the connection without an answer"
        reply = _strict(got)
        assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), got[:300]
        if not reply["ok"]:
            assert isinstance(reply.get("reason"), str) and reply["reason"], reply
            assert isinstance(reply.get("error"), str) and reply["error"], reply
        return reply

    def event(self) -> dict[str, Any]:
        got = self.file.readline()
        assert got, "the agent closed the subscription"
        event: dict[str, Any] = _strict(got)["event"]
        return event

    def emit(self, *events: dict[str, Any]) -> dict[str, Any]:
        return self.ask(json.dumps({"op": "emit", "events": list(events)}))

    def close(self) -> None:
        self.file.close()
        self.sock.close()


_open: list[Raw] = []


@pytest.fixture(autouse=True)
def _close_connections() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def raw(agent: AgentProcess) -> Raw:
    c = Raw(agent.socket)
    _open.append(c)
    return c


@pytest.fixture
def agent(tmp_path: Path, agent_factory: list[AgentProcess]) -> AgentProcess:
    a = AgentProcess(write_config(tmp_path / "config.toml", url=""))
    agent_factory.append(a)
    a.start()
    return a


@pytest.fixture(scope="module")
def shared_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """One agent for the one-request cases: each checks what its request added to the
    counters, and every later case checks that the ones before left the agent healthy. The
    19 cases started 19 agents: the file took 12 s alone, 33 s in the loaded suite."""
    a = AgentProcess(write_config(tmp_path_factory.mktemp("bus") / "config.toml", url=""))
    a.start()
    yield a
    a.kill()


def _refused(agent: AgentProcess) -> tuple[dict[str, int], dict[str, int]]:
    """The bus's refusal counters: (requests, events) by reason."""
    bus = _bus(agent)
    return dict(bus["refused_requests"]), dict(bus["refused_events"])


def _bus(agent: AgentProcess) -> dict[str, Any]:
    bus: dict[str, Any] = agent.status()["bus"]
    return bus


def _healthy(agent: AgentProcess, conn: Raw | None = None) -> None:
    """What a user checks after a bad request: a normal event still goes in, status is fine,
    the log has no traceback."""
    c = conn or raw(agent)
    reply = c.emit({"type": "o2o.kiosk.view", "data": {"page": "after"}})
    assert reply["ok"] and len(reply["ids"]) == 1 and reply["seqs"][0] > 0, reply
    st = agent.status()
    assert st["outbox"]["writer"] == "running"
    assert all(h["state"] in ("running", "finished") and not h["restarts"]
               for h in st["components"].values()), st["components"]
    assert "Traceback" not in agent.log.read_text()


def test_lone_surrogate_is_refused_naming_the_field_and_capture_goes_on(
        agent: AgentProcess) -> None:
    c = raw(agent)
    reply = c.ask('{"op":"emit","events":[{"type":"o2o.kiosk.note","data":{"note":"\\ud800"}}]}')
    assert reply["reason"] == "invalid-event" and "note" in reply["error"]
    assert "surrogate" in reply["error"]
    _healthy(agent, c)
    assert _bus(agent)["refused_events"]["invalid"] == 1


@pytest.mark.parametrize("bad", ["o2o.kiosk.view\n", "o2o.kiosk.view\r", 'o2o.kiosk.v"w',
                                 "o2o.kiosk." + "v" * 200, "o2o.kiosk.\u00e9t\u00e9"],
                         ids=["newline", "cr", "quote", "too-long", "non-ascii"])
def test_type_that_would_break_the_envelope_is_refused(shared_agent: AgentProcess,
                                                       bad: str) -> None:
    agent = shared_agent
    before = _refused(agent)[1].get("type", 0)
    c = raw(agent)
    reply = c.emit({"type": bad, "data": {}})
    assert reply["reason"] == "invalid-event" and "type" in reply["error"]
    _healthy(agent, c)
    assert _bus(agent)["refused_events"]["type"] == before + 1


def test_ids_are_the_agents_and_reserved_types_are_refused(agent: AgentProcess) -> None:
    c = raw(agent)
    first = c.emit({"type": "o2o.kiosk.checkin", "data": {"order": "A-1"}})
    assert first["ok"]
    reused = c.emit({"type": "o2o.kiosk.checkin", "data": {"order": "FAKE"},
                     "id": first["ids"][0]})
    assert reused["reason"] == "invalid-event" and '"id"' in reused["error"]
    for forged in ("o2o.agent.started", "o2o.privacy.erased", "o2o.link.config"):
        reply = c.emit({"type": forged, "data": {}})
        assert reply["reason"] == "invalid-event" and "agent's own" in reply["error"], forged
    _healthy(agent, c)
    refused = _bus(agent)["refused_events"]
    assert (refused["client-id"], refused["reserved-type"]) == (1, 3)


@pytest.mark.parametrize("line", [
    '{"op":"emit","events":[{"type":"o2o.kiosk.view","data":{"n":' + "9" * 5000 + "}}]}",
    '{"op":"emit","req":' + "1" * 5000 + "}",
    "[" * 100_000 + "]" * 100_000,
    '{"op":"emit","events":[{"type":"o2o.kiosk.view","data":' + "[" * 50_000 + "]" * 50_000
    + "}]}",
    '{"op":"emit","events":[{"type":"o2o.kiosk.view","data":{"v":NaN}}]}',
    '{"op":"emit","events":[{"type":"o2o.kiosk.view","data":{"v":1e400}}]}',
    '{"op":"kpis","day":' + "9" * 30 + "}",
    '{"op":"kpis","day":-86400}',
    '{"op":"emit","events":[{"type":"o2o.kiosk.view","priority":' + "9" * 40 + "}]}",
    '{"op":' + '"x' * 10_000 + '"}',
    b'{"op":"ping","x":"\xff\xfe"}',
    '{"op":"emit","events":[{"type":["o2o.kiosk.view"],"data":{}}]}',
    "not json at all",
    '"just a string"',
], ids=["int-5000-digits-in-data", "int-5000-digits-as-req", "nesting-100k", "nesting-in-data",
        "nan", "float-overflow", "kpis-day-overflow", "kpis-day-negative", "priority-huge",
        "op-huge", "not-utf8", "type-a-list", "not-json", "not-an-object"])
def test_malformed_requests_are_answered_and_the_connection_goes_on(
        shared_agent: AgentProcess, line: str | bytes) -> None:
    agent = shared_agent
    before = _refused(agent)
    c = raw(agent)
    reply = c.ask(line)
    assert reply["ok"] is False and reply["reason"] != "internal-error", reply
    assert c.ask('{"op":"ping"}')["ok"]  # the same connection goes on
    _healthy(agent, c)
    after = _refused(agent)
    # counted at least once (a bad event in a request counts as a request and an event)
    assert sum(after[0].values()) + sum(after[1].values()) \
        > sum(before[0].values()) + sum(before[1].values()), (before, after)


def test_odd_footfall_reaches_subscribers_and_kpis_stay_finite(agent: AgentProcess) -> None:
    sub = raw(agent)
    assert sub.ask('{"op":"subscribe"}')["ok"]
    c = raw(agent)
    assert c.emit({"type": "o2o.ble.footfall", "data": {"devices": "many"}},
                  {"type": "o2o.ble.footfall", "data": {"devices": 1e300}},
                  # app exits (visits): the store's own beacons' exits are no visit, not counted
                  {"type": "o2o.ble.presence",
                   "data": {"action": "exit", "kind": "app", "dwell_s": 1e308}},
                  {"type": "o2o.ble.presence",
                   "data": {"action": "exit", "kind": "app", "dwell_s": 1e308}},
                  {"type": "o2o.kiosk.view", "data": {"page": "same-group"}})["ok"]
    got = [sub.event()["type"] for _ in range(5)]
    assert got[-1] == "o2o.kiosk.view"  # the whole commit group reached the subscriber
    # the KPI hook runs after the bus hook on the writer's thread: wait for it, do not race it
    answers: list[dict[str, Any]] = []

    def counted() -> bool:
        answers.append(c.ask('{"op":"kpis"}'))  # strict JSON: no Infinity in the answer
        return bool(answers[-1]["ok"]) and answers[-1]["summary"].get("views") == 1
    wait_for(counted, 10, what=lambda: f"the view counted: {answers[-1]}")
    _healthy(agent, c)
    st = agent.status()
    assert st["commit_hooks"]["kpi_ignored_values"] == 4
    assert st["commit_hooks"]["failures"] == {}


def test_type_cap_refuses_new_types_past_the_limit(agent: AgentProcess) -> None:
    from agent.bus.limits import MAX_BUS_TYPES

    c = raw(agent)
    reply = c.emit(*({"type": f"o2o.test.t{i}", "data": {}} for i in range(MAX_BUS_TYPES - 1)))
    assert reply["ok"]
    assert c.emit({"type": "o2o.test.new", "data": {}})["ok"]  # the last one still fits
    refused = c.emit({"type": "o2o.test.one-too-many", "data": {}})
    assert refused["reason"] == "invalid-event" and "reuse" in refused["error"]
    assert c.emit({"type": "o2o.test.t7", "data": {}})["ok"]  # known types go on
    bus = _bus(agent)
    assert bus["refused_events"]["too-many-types"] == 1


def _rss_kib(pid: int) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1])
    raise AssertionError("no VmRSS")


def test_subscriber_that_never_reads_is_dropped_and_memory_stays_bounded(
        agent: AgentProcess) -> None:
    stuck = raw(agent)  # subscribes, then never reads again
    stuck.sock.sendall(b'{"op":"subscribe"}\n')
    wait_for(lambda: _bus(agent)["subscribers"] == 1, 10, what="subscribed")
    assert agent.proc is not None
    before = _rss_kib(agent.proc.pid)
    c = raw(agent)
    blob = "x" * 4000
    for k in range(0, 12_000, 200):  # ~48 MB of events the subscriber never reads
        assert c.emit(*({"type": "o2o.kiosk.view", "data": {"i": k + j, "blob": blob}}
                        for j in range(200)))["ok"]
    grown_mib = (_rss_kib(agent.proc.pid) - before) / 1024
    bus = _bus(agent)
    assert bus["lagged_subscribers"] == 1 and bus["subscribers"] == 0
    assert grown_mib < 30, f"RSS grew {grown_mib:.0f} MiB with a subscriber that never reads"
    _healthy(agent, c)


def test_a_subscriber_that_reads_gets_a_whole_burst(agent: AgentProcess) -> None:
    """The byte bound drops a subscriber that stopped reading, not a kiosk that reads while
    one client commits 5,000 events at once."""
    sub = raw(agent)
    assert sub.ask('{"op":"subscribe"}')["ok"]
    c = raw(agent)
    blob = "y" * 100  # the request stays under the 1 MiB line
    assert c.emit(*({"type": "o2o.kiosk.view", "data": {"i": i, "blob": blob}}
                    for i in range(5000)))["ok"]
    seen = [sub.event()["data"]["i"] for _ in range(5000)]
    assert seen == list(range(5000))
    assert _bus(agent)["lagged_subscribers"] == 0


def test_connection_flood_is_capped_and_the_cli_still_gets_in(agent: AgentProcess) -> None:
    from agent.bus.client import BusClient
    from agent.bus.limits import MAX_CONNECTIONS
    from agent.errors import AgentError

    assert agent.proc is not None
    idle: list[socket.socket] = []
    try:
        for _ in range(MAX_CONNECTIONS + 100):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(agent.socket))
            idle.append(s)
        pid = agent.proc.pid
        wait_for(lambda: len(os.listdir(f"/proc/{pid}/fd")) < MAX_CONNECTIONS + 60, 10,
                 what=lambda: f"{len(os.listdir(f'/proc/{pid}/fd'))} descriptors held")

        def cli_gets_in() -> bool:
            try:
                with BusClient(agent.socket, timeout=5) as bus:
                    return bus.request({"op": "ping"})["ok"] is True
            except AgentError:
                return False  # refused while every connection is fresh: counted, try again
        started = time.monotonic()
        wait_for(cli_gets_in, 20, interval=0.5, what="a CLI connection")
        assert time.monotonic() - started < 15
        bus = _bus(agent)
        # one process: past its own cap its idle connections make room (fair.py)
        assert bus["refused_connections"] + bus["evicted_connections"] >= 100
        assert bus["clients"] <= MAX_CONNECTIONS
        # an evicted or refused peer was told why
        idle[0].settimeout(10)
        told = idle[0].recv(4096)  # the oldest: evicted first
        assert b'"busy"' in told or b'"evicted"' in told
    finally:
        for s in idle:
            s.close()
    _healthy(agent)


# --- property: whatever a client sends, it is answered and capture goes on ----------------

_text = st.text(st.characters(blacklist_categories=()), max_size=20)  # surrogates, controls
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12)
_types = st.one_of(
    st.sampled_from(["o2o.kiosk.view", "o2o.agent.started", "o2o.link.x", "o2o.privacy.erased",
                     "o2o.kiosk.view\n", "", "o2o", "O2O.X", "o2o.ble.footfall"]),
    _text, _json)
_events = st.lists(st.one_of(
    st.fixed_dictionaries({"type": _types, "data": _json},
                          optional={"priority": _json, "id": _json}),
    _json), min_size=0, max_size=3)
_requests = st.one_of(
    st.builds(lambda e: {"op": "emit", "events": e}, _events),
    st.builds(lambda e: {"op": "emit", "events": e}, _json),
    st.fixed_dictionaries({"op": _json}, optional={"req": _json, "day": _json}),
    _json)


def _raw_line(draw_obj: Any, tweak: int) -> bytes:
    text = json.dumps(draw_obj)  # ASCII escapes: lone surrogates travel as \udXXX
    if tweak == 1:  # a number beyond Python's integer-string limit inside the request
        text = text.replace("null", "9" * 4400, 1)
    elif tweak == 2:  # nesting beyond the recursion limit
        text = text.replace("null", "[" * 30_000 + "]" * 30_000, 1)
    elif tweak == 3:
        text = text.replace("null", "NaN", 1)
    return text.encode()


@pytest.fixture
def prop_agent(tmp_path: Path, agent_factory: list[AgentProcess]) -> AgentProcess:
    a = AgentProcess(write_config(tmp_path / "config.toml", url=""))
    agent_factory.append(a)
    a.start()
    return a


@ABUSE
@given(request=_requests, tweak=st.integers(0, 5))
def test_hostile_requests_are_answered_and_capture_goes_on(
        prop_agent: AgentProcess, request: Any, tweak: int) -> None:
    c = raw(prop_agent)
    answer = c.ask(_raw_line(request, tweak))  # exactly one well-formed answer
    assert answer.get("reason") != "internal-error", answer  # refused as what it is
    reply = c.emit({"type": "o2o.kiosk.view", "data": {"page": "after"}})
    assert reply["ok"] and reply["ids"][0], reply
    _open.remove(c)
    c.close()
    st_ = prop_agent.status()
    assert st_["outbox"]["writer"] == "running"
    assert "Traceback" not in prop_agent.log.read_text()


def test_a_stopped_writer_is_reported_by_status_and_doctor_and_emits_fail_fast(
        tmp_path: Path) -> None:
    """The writer outlives bad input now; should its thread stop anyway (a bug, memory), the
    agent must not look healthy while storing nothing."""
    from agent.bus.client import BusClient
    from agent.config import load_config
    from agent.doctor.system import check_agent
    from agent.errors import AgentError
    from tests.conftest import agent_in_thread

    cfg = load_config(str(write_config(tmp_path / "config.toml", url="")))
    with agent_in_thread(cfg) as (agent, _loop):
        wait_for(lambda: agent.ready.is_set(), 20, what="agent ready")

        class Stop(BaseException):
            pass

        def stop(*a: object) -> None:
            raise Stop("simulated")
        agent.writer._commit = stop  # type: ignore[method-assign]
        with BusClient(cfg.bus.socket, timeout=10) as bus:
            with pytest.raises(AgentError, match="writer has stopped"):
                bus.emit([{"type": "o2o.kiosk.view", "data": {}}])
            t0 = time.monotonic()
            with pytest.raises(AgentError, match="restart the agent"):
                bus.emit([{"type": "o2o.kiosk.view", "data": {}}])
            assert time.monotonic() - t0 < 2  # answered at once, not after a timeout
            st = bus.status()
        assert st["outbox"]["writer"] == "stopped"
        assert "stopped" in st["outbox"]["last_error"]
        assert agent.health_problem() is not None  # what the systemd watchdog asks
        (finding,) = check_agent(cfg)
        assert finding.level == "fail" and "outbox writer" in finding.message, finding.as_json()
