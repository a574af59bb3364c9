"""Downstream MQTT, attacked: a hostile or careless upstream publishing to the broker the real
agent listens on (a private mosquitto). What a store relies on: a command is answered only
inside the device's reply namespace and a refused one with nothing but its refusal; every
refused or failed document is counted by reason and shows in `status`, while the log and
the upstream hear of a flood only briefly; erasure finds a subject whatever its alphabet;
a bundle cannot replace its own manifest; capture goes on and no traceback is logged."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import inspect
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.bus.client import BusClient
from agent.storelink.docs import sign
from tests.abuse.conftest import ABUSE
from tests.conftest import AgentProcess, wait_for
from tests.integration.test_storelink import KEY, doc, linked_agent

BASE = "o2o/v1/store-1"
REPLIES = f"{BASE}/dev-1/cmd-reply/ops"


class Upstream:
    """One MQTT 5 client that publishes like upstream and hears everything on the broker."""

    def __init__(self, broker: Any) -> None:
        self.heard: list[tuple[str, bytes, bytes]] = []  # (topic, payload, correlation)
        self._lock = threading.Lock()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"up-{time.monotonic_ns()}",
                             protocol=mqtt.MQTTv5)
        self.c.on_message = self._on_message
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.connect("127.0.0.1", broker.port)
        self.c.loop_start()
        self.c.subscribe("#", qos=1)
        assert subscribed.wait(10)

    def _on_message(self, c: Any, u: Any, msg: Any) -> None:
        corr = bytes(getattr(msg.properties, "CorrelationData", b"") or b"")
        with self._lock:
            self.heard.append((msg.topic, bytes(msg.payload), corr))

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.heard if t == topic]

    def answers(self) -> list[tuple[str, bytes, bytes]]:
        """What was heard but the requests themselves."""
        with self._lock:
            return [(t, p, c) for t, p, c in self.heard if "/cmd/" not in t]

    def answer(self, corr: bytes) -> dict[str, Any]:
        # an erasure answers when its worker job is done: on a loaded machine that took
        # longer than 10 s once; what is checked is the answer, not its speed
        wait_for(lambda: any(c == corr for _, _, c in self.answers()), 30,
                 what=f"the answer {corr!r}")
        return dict(json.loads(next(p for _, p, c in self.answers() if c == corr)))

    def publish(self, topic: str, payload: bytes, response: str = "", corr: bytes = b"") -> None:
        props = None
        if response:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ResponseTopic = response
            props.CorrelationData = corr
        self.c.publish(topic, payload, qos=1, properties=props).wait_for_publish(10)

    def close(self) -> None:
        self.c.disconnect()  # first: loop_stop alone waits out the loop's 1 s select
        self.c.loop_stop()


@pytest.fixture
def upstream(mosquitto: Any) -> Iterator[Upstream]:
    up = Upstream(mosquitto)
    yield up
    up.close()


def link(agent: AgentProcess) -> dict[str, Any]:
    return dict(agent.status()["link"])


def counted(agent: AgentProcess) -> int:
    """Every document the agent has dealt with, whichever way."""
    st = link(agent)
    return (sum(st["refused"].values()) + sum(st.get("failed", {}).values())
            + sum(st["accepted"].values()) + len(st["waiting"]))


def no_traceback(agent: AgentProcess) -> None:
    text = agent.log.read_text(errors="replace")
    assert "Traceback" not in text, text[text.index("Traceback") - 500:][:3000]


def capture_goes_on(agent: AgentProcess) -> None:
    with BusClient(agent.socket) as bus:
        reply = bus.request({"op": "emit", "events": [
            {"type": "o2o.kiosk.view", "data": {"page": "still-here"}}]})
    assert reply["ok"] and reply["ids"][0], reply


def test_commands_are_answered_only_inside_the_reply_namespace(
        tmp_path: Path, mosquitto: Any, upstream: Upstream,
        agent_factory: list[AgentProcess]) -> None:
    _, agent = linked_agent(tmp_path, mosquitto, agent_factory)
    unsigned = json.dumps({"o2o": "doc/1", "kind": "cmd", "body": {"name": "status"}}).encode()
    elsewhere = {"o2o/v1/store-9/dev-1/events": b"x1",  # another store's events
                 f"{BASE}/dev-1/state": b"x2",  # the device's own birth/death topic
                 f"{BASE}/dev-2/cmd-reply/ops": b"x3",  # another device's replies
                 f"{BASE}/dev-1/cmd-replyX/ops": b"x4"}
    for where, corr in elsewhere.items():
        upstream.publish(f"{BASE}/dev-1/cmd/status", unsigned, where, corr)
    # MQTT 3.1.1 style: the (unsigned) body names where to answer
    body_says = json.dumps({"o2o": "doc/1", "kind": "cmd", "body": {
        "name": "status", "response_topic": f"{BASE}/dev-1/events", "correlation": "x5"}})
    upstream.publish(f"{BASE}/dev-1/cmd/status", body_says.encode())
    # a signed command that names a topic outside is run, but not answered there
    signed = doc("cmd", int(time.time() * 1000), {"name": "ping", "args": {}}, device="dev-1")
    upstream.publish(f"{BASE}/dev-1/cmd/ping", signed, f"{BASE}/dev-1/events", b"x6")
    # the same forged request to the reply namespace: a refusal and nothing more
    upstream.publish(f"{BASE}/dev-1/cmd/status", unsigned, REPLIES, b"ok1")
    refusal = upstream.answer(b"ok1")  # commands are handled in order: the rest are done
    assert not [(t, p) for t, p, c in upstream.answers() if c.startswith(b"x")]
    assert not any(b'"ok"' in p for p in upstream.on(f"{BASE}/dev-1/state"))
    assert not any(b'"ok"' in p for p in upstream.on(f"{BASE}/dev-1/events"))
    assert {k: refusal.get(k) for k in ("ok", "command", "error", "device")} == {
        "ok": False, "command": "status", "error": "unsigned", "device": "dev-1"}
    assert set(refusal) == {"ok", "command", "error", "device", "time"}
    st = link(agent)
    assert st["refused"]["unsigned"] == len(elsewhere) + 2
    assert st["commands"]["reply-topic-refused"] == len(elsewhere) + 2
    assert st["commands"]["answered"] == 1
    no_traceback(agent)


def test_a_flood_of_refused_documents_is_counted_but_told_briefly(
        tmp_path: Path, mosquitto: Any, upstream: Upstream,
        agent_factory: list[AgentProcess]) -> None:
    _, agent = linked_agent(tmp_path, mosquitto, agent_factory)
    forger = Ed25519PrivateKey.generate()
    forged = doc("orders", 7, {"mode": "snapshot", "rows": []}, key=forger)
    n = 1500
    for i in range(n):
        topic = f"{BASE}/all/orders" if i % 2 else f"{BASE}/dev-1/consent"
        upstream.c.publish(topic, forged if i % 3 else b"not json", qos=1)
        if i % 500 == 499:  # the broker drops what queues past 1,000 for one subscriber
            wait_for(lambda i=i: sum(link(agent)["refused"].values()) == i + 1, 30,
                     what=lambda: f"all refused and counted: {link(agent)['refused']}")
    st = link(agent)
    assert st["refused"] == {"unknown-key": n - len(range(0, n, 3)),
                             "malformed": len(range(0, n, 3))}
    lines = [ln for ln in agent.log.read_text().splitlines() if "refused a document" in ln]
    assert len(lines) == 2, lines[:5]  # the first of each reason; a summary in a minute
    assert st["reports_suppressed"] == n - 2
    capture_goes_on(agent)
    wait_for(lambda: any(b'"o2o.kiosk.view"' in p for p in upstream.on(f"{BASE}/dev-1/events")),
             20, what="the capture sent upstream")
    told = sum(p.count(b'"o2o.link.refused"') for p in upstream.on(f"{BASE}/dev-1/events"))
    assert told == 2
    no_traceback(agent)


def test_downstream_failures_that_are_not_forgeries_are_counted_and_shown(
        tmp_path: Path, mosquitto: Any, upstream: Upstream,
        agent_factory: list[AgentProcess]) -> None:
    _, agent = linked_agent(tmp_path, mosquitto, agent_factory)
    twice = doc("orders", 1, {"mode": "snapshot", "rows": [
        {"order_id": "A-1", "code": "K7Q2M9", "first_name": "Anna", "status": "ready"},
        {"order_id": "A-2", "code": "K7Q2M9", "first_name": "Ben", "status": "ready"}]})
    upstream.publish(f"{BASE}/all/orders", twice)
    wait_for(lambda: link(agent)["refused"].get("malformed") == 1, 10,
             what=lambda: f"duplicate codes refused: {link(agent)}")
    assert "K7Q2M9" in link(agent)["last_refusal"]

    def bundle(version: int, files: dict[str, bytes]) -> bytes:
        return doc("content", version, {
            "manifest": {"version": version, "pages": [{"id": "p", "title": {"en": "Good"}}]},
            "files": {name: {"sha256": hashlib.sha256(data).hexdigest(),
                             "data_b64": base64.b64encode(data).decode()}
                      for name, data in files.items()}})

    upstream.publish(f"{BASE}/all/content", bundle(1, {"img/p.png": b"png"}))
    current = tmp_path / "content" / "current"
    wait_for(lambda: (current / "manifest.json").exists(), 20, what="the good bundle")
    evil = json.dumps({"version": 2, "pages": [{"id": "evil", "title": {"en": "[@click=x]"}}],
                       "privacy_url": "http://evil.example"}).encode()
    bad = [{"manifest.json": evil}, {"MANIFEST.JSON": evil}, {"a": b"1", "a/b": b"2"},
           {"img/P.png": b"1", "img/p.png": b"2"}]
    for i, files in enumerate(bad):
        upstream.publish(f"{BASE}/all/content", bundle(2 + i, files))
    wait_for(lambda: link(agent)["refused"].get("malformed") == 1 + len(bad), 10,
             what=lambda: f"bad bundles refused: {link(agent)}")
    assert json.loads((current / "manifest.json").read_text())["pages"][0]["id"] == "p"
    assert current.resolve().name == "v1"
    assert link(agent).get("failed") == {}
    no_traceback(agent)


def test_erasure_finds_subjects_in_any_alphabet(tmp_path: Path) -> None:
    from agent.config import load_config
    from agent.storelink.cache import LinkCache
    from agent.storelink.docs import Doc
    from tests.conftest import agent_in_thread, write_config

    cfg = load_config(str(write_config(
        tmp_path / "config.toml", url="",  # no uplink: the events wait in the outbox
        extra=f'[kiosk]\nstore_db = "{tmp_path / "store.db"}"\n[metrics]\nlisten = ""\n')))
    subjects = ["Zoë Müller", "山田", "loy0012345678"]
    cache = LinkCache(tmp_path / "store.db")  # as upstream wrote them: escaped, and not
    cache.store("consent", "all", 1, json.dumps({"rows": [{"subject": subjects[0]}]}).encode())
    cache.store("orders", "all", 2, json.dumps({"rows": [{"first_name": subjects[1]}]},
                                               ensure_ascii=False).encode())
    cache.close()
    with agent_in_thread(cfg) as (agent, loop):
        wait_for(lambda: (tmp_path / "agent.sock").exists(), 20, what="agent up")
        with BusClient(tmp_path / "agent.sock") as bus:
            for s in subjects:
                bus.emit([{"type": "o2o.kiosk.checkin", "data": {"card": s, "n": i}}
                          for i in range(2)])
        agent.privacy.apply_consent(Doc("consent", "store-1", "all", 1, 0.0, 1e12, {
            "mode": "increment", "rows": [{"subject": s, "state": "granted"}
                                          for s in subjects]}, "k"))

        def erase(subject: str) -> dict[str, int]:
            """As upstream's command arrives: on the agent's event loop."""
            async def run() -> dict[str, int]:
                result = agent.commands.handlers()["erase-subject"]({"subject": subject})
                done = await result if inspect.isawaitable(result) else result
                return dict(done["removed"])
            return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=30)

        removed = {s: erase(s) for s in subjects}
    for s in subjects:
        assert (removed[s]["outbox_events"], removed[s]["consent_records"]) == (2, 1), \
            (s, removed[s])
    assert [removed[s]["cached_documents"] for s in subjects] == [1, 1, 0]
    for p in tmp_path.iterdir():
        if p.name.startswith(("outbox.db", "store.db")):
            data = p.read_bytes()
            for s in subjects:
                for form in (s.encode(), json.dumps(s).encode()):
                    assert form not in data, (p.name, s)


def test_an_erasure_command_keeps_no_copy_of_its_subject(
        tmp_path: Path, mosquitto: Any, upstream: Upstream,
        agent_factory: list[AgentProcess]) -> None:
    _, agent = linked_agent(tmp_path, mosquitto, agent_factory)
    subject = "Zoë Müller"
    cmd = doc("cmd", int(time.time() * 1000), {"name": "erase-subject",
                                               "args": {"subject": subject}}, device="dev-1")
    upstream.publish(f"{BASE}/dev-1/cmd/erase-subject", cmd, REPLIES, b"e1")
    assert upstream.answer(b"e1")["ok"]
    upstream.publish(f"{BASE}/dev-1/cmd/erase-subject", cmd, REPLIES, b"e2")
    assert upstream.answer(b"e2")["error"].startswith("replayed")  # its version is kept
    assert agent.stop() == 0
    for p in tmp_path.iterdir():
        if p.name.startswith("store.db"):
            assert subject.encode() not in p.read_bytes(), p.name
            assert json.dumps(subject).encode() not in p.read_bytes(), p.name


# --- property-based: whatever arrives, it is answered or counted and the agent goes on ----

DOWNSTREAM = ["config", "content", "orders", "appointments", "consent", "keys",
              "cmd/status", "cmd/erase-subject", "cmd/x"]
json_values = st.recursive(  # what a signer can sign: no NaN, no infinities
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                          allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20)
any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20)
hostile_raw = st.one_of(
    st.binary(max_size=2000),
    any_json.map(lambda v: json.dumps(v).encode()),
    any_json.map(lambda v: json.dumps({"o2o": "doc/1", "kind": "cmd", "sig": "eA==",
                                       "key_id": "k", "body": v}).encode()),
    st.sampled_from([
        b"[" * 100_000 + b"]" * 100_000,  # deep nesting
        b'{"o2o":"doc/1","version":' + b"9" * 5000 + b"}",  # a 5,000-digit integer
        b'{"o2o":"doc/1","sig":"x","key_id":"' + b"k" * 300_000 + b'"}',  # a huge field
        b'{"o2o":"doc/1","issued":1e400,"expires":-1e400,"sig":"eA=="}',
        b'{"o2o":"doc/1","sig":"\\ud800","key_id":"\\udfff"}',  # lone surrogates
    ]),
)


def signed_hostile(kind: str, body: Any, version: int, **over: Any) -> bytes:
    """A document signed with the trusted key whose body is anything at all."""
    now = time.time()
    fields: dict[str, Any] = {"kind": kind.split("/")[0], "store": "store-1", "device": "all",
                              "version": version, "issued": now - 5, "expires": now + 60,
                              "body": body}
    fields.update(over)
    return sign(KEY, **fields)


@pytest.fixture
def hostile_agent(tmp_path: Path, mosquitto: Any, upstream: Upstream,
                  agent_factory: list[AgentProcess]) -> AgentProcess:
    return linked_agent(tmp_path, mosquitto, agent_factory)[1]


@ABUSE
@given(topic=st.sampled_from(DOWNSTREAM), raw=hostile_raw, scope=st.sampled_from(["dev-1", "all"]))
def test_any_bytes_on_any_downstream_topic_are_counted(
        hostile_agent: AgentProcess, upstream: Upstream, topic: str, raw: bytes,
        scope: str) -> None:
    before = counted(hostile_agent)
    upstream.publish(f"{BASE}/{scope}/{topic}", raw, REPLIES, b"p")
    wait_for(lambda: counted(hostile_agent) == before + 1, 10,
             what=lambda: f"counted: {link(hostile_agent)}")
    capture_goes_on(hostile_agent)
    no_traceback(hostile_agent)


_version = iter(range(int(time.time()), 2**62))


@ABUSE
@given(kind=st.sampled_from([k for k in DOWNSTREAM if k != "config"]), body=json_values,
       over=st.sampled_from([{}, {"expires": 1.0}, {"issued": 2.0**52}, {"store": "store-9"},
                             {"version": 2**63 - 1}]))
def test_any_signed_body_is_applied_or_counted(
        hostile_agent: AgentProcess, upstream: Upstream, kind: str, body: Any,
        over: dict[str, Any]) -> None:
    before = counted(hostile_agent)
    raw = signed_hostile(kind, body, **{"version": next(_version), **over})
    upstream.publish(f"{BASE}/all/{kind}", raw, REPLIES, b"s")
    wait_for(lambda: counted(hostile_agent) >= before + 1, 10,
             what=lambda: f"counted: {link(hostile_agent)}")
    capture_goes_on(hostile_agent)
    no_traceback(hostile_agent)
