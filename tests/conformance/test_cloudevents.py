"""What the agent publishes upstream, read by the official CloudEvents SDK (PyPI `cloudevents`)
as a collector in another team would: every event of every batch valid CloudEvents 1.0 per the
SDK and the spec (required attributes, RFC 3339 time, extension names), the data of each event
a bus client emitted equal to what it emitted — unicode of every plane, RTL, controls, quotes,
numbers at the edges, an object of exactly the size limit — and the MQTT 5 properties as the
CloudEvents MQTT protocol binding (1.0.2, section 3) asks."""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from agent.bus.client import BusClient
from agent.envelope import MAX_DATA_BYTES
from agent.errors import AgentError
from agent.keys import public_key_text
from agent.storelink.docs import sign
from tests.conftest import AgentProcess, wait_for, write_config

cloudevents_json = pytest.importorskip("cloudevents.core.formats.json",
                                       reason="the CloudEvents SDK (pip install cloudevents)")
cloudevents_http = pytest.importorskip("cloudevents.v1.http")

TOPIC = "o2o/v1/store-1/dev-1/events"
# CloudEvents 1.0, "Extension Context Attributes": lowercase letters and digits, and SHOULD
# be at most 20 characters
EXTENSION_NAME = re.compile(r"[a-z0-9]{1,20}")
# RFC 3986: a scheme, then only characters a URI may hold (unreserved, reserved, %-escapes)
URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+")
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
CONTEXT = {"specversion", "id", "source", "type", "time", "datacontenttype", "dataschema",
           "subject", "data", "data_base64"}
INT32 = (-2**31, 2**31 - 1)  # the spec's Integer type

# one character from each of the 17 planes (assigned or not, all Unicode scalar values), the
# edges of the BMP, noncharacters, a BOM, line/paragraph separators
PLANES = "".join(chr(p * 0x10000 + 0x41) for p in range(17)) + \
    "\u00e9\u4e2d\ud7ff\ue000\ufeff\ufffd\ufffe\uffff\U0010fffd\U0010ffff\u2028\u2029"
EMOJI = "\U0001f600\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466" \
    "\U0001f1e9\U0001f1ea\U0001f44b\U0001f3fd\u2764\ufe0f\U000e0067"
RTL = "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u202eRLO\u202c \u2067iso\u2069"
QUOTES = "\"'\\/\\\\\"`\u00ab\u00bb\u201c\u201d\\u0000 \\n"  # also text that looks like escapes
CONTROLS = "".join(chr(c) for c in range(0x20)) + "\x7f" + \
    "".join(chr(c) for c in range(0x80, 0xA0))

NUMBERS: list[Any] = [
    0, -1, 2**31 - 1, -2**31, 2**53, 2**53 + 1, 2**63 - 1, -2**63, 2**64, 10**300,
    int("9" * 4300),  # the longest integer Python's JSON reads (int_max_str_digits)
    0.1, -0.0, 1.0, 1e16, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
    -1.7976931348623157e308, 1.5e-7, True, False, None,
]


def tricky() -> list[dict[str, Any]]:
    """Event data a bus client may send and the agent must carry unchanged."""
    texts = {"planes": PLANES, "emoji": EMOJI, "rtl": RTL, "quotes": QUOTES,
             "controls": CONTROLS}
    keyed = {PLANES: 1, EMOJI: 2, RTL: 3, QUOTES: 4, CONTROLS: 5, "": 6, "data": 7,
             "specversion": "2.0", "id": None}  # keys that look like CloudEvents attributes
    nested: Any = {"leaf": EMOJI}
    for depth in range(100):
        nested = {f"l{depth}": nested, "rtl": RTL} if depth % 2 else [nested, depth]
    return [texts, {"keys": keyed}, {"numbers": NUMBERS}, {"nested": nested},
            {"text": PLANES + EMOJI + RTL + QUOTES + CONTROLS}, {}, {"a": []},
            exactly(MAX_DATA_BYTES)]


def encoded_size(data: Any) -> int:
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


def exactly(size: int) -> dict[str, Any]:
    """An object whose compact UTF-8 JSON is `size` bytes: nested rows of mixed text."""
    rows = [{"row": i, "text": EMOJI + RTL + QUOTES, "n": [2**63 - 1, -0.0, 5e-324]}
            for i in range(int(size / 200))]
    data: dict[str, Any] = {"rows": rows, "pad": ""}
    while (missing := size - encoded_size(data)) > 0:
        data["pad"] += "x" * missing if missing < 4 else "\U0001f600" * (missing // 4)
    assert encoded_size(data) == size, encoded_size(data)
    return data


def strict_equal(a: Any, b: Any) -> bool:
    """Equal in value and JSON type: 1 is not 1.0 nor True, -0.0 is not 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


class Collector:
    """An upstream MQTT 5 client keeping each events message with its properties."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[bytes, Any]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ce-collector",
                             protocol=mqtt.MQTTv5)
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: self.ready.set()
        self.c.connect("127.0.0.1", port)
        self.c.subscribe(TOPIC, qos=1)
        self.c.loop_start()
        assert self.ready.wait(10), "the collector's subscription was not confirmed"

    def _on_message(self, c: Any, u: Any, msg: Any) -> None:
        with self.lock:
            self.messages.append((bytes(msg.payload), msg.properties))

    def events(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {ev["id"]: ev for payload, _ in self.messages for ev in json.loads(payload)}

    def close(self) -> None:
        self.c.disconnect()  # first: loop_stop alone waits out the loop's 1 s select
        self.c.loop_stop()


def check_event(raw: dict[str, Any], now: datetime) -> Any:
    """One event of a batch read by the SDK and held to the spec; the SDK's event."""
    event = cloudevents_json.JSONFormat().read(None, json.dumps(raw, ensure_ascii=False))
    legacy = cloudevents_http.from_dict(raw)  # the SDK's older API agrees
    assert legacy["id"] == event.get_id() and legacy.data == event.get_data()
    assert event.get_specversion() == "1.0"
    assert isinstance(raw["id"], str) and raw["id"], raw
    assert isinstance(raw["type"], str) and raw["type"], raw
    assert URI.fullmatch(raw["source"]), raw["source"]  # a URI-reference; ours is absolute
    source = urlsplit(raw["source"])
    assert source.scheme == "o2o-edge" and source.netloc == "store-1", raw["source"]
    assert RFC3339.fullmatch(raw["time"]), raw["time"]
    assert abs((event.get_time() - now).total_seconds()) < 300, raw["time"]
    assert raw["datacontenttype"] == "application/json"
    for name in set(raw) - CONTEXT:
        assert EXTENSION_NAME.fullmatch(name), f"extension name {name!r} is not valid"
        value = raw[name]
        assert isinstance(value, str | bool) or (
            isinstance(value, int) and INT32[0] <= value <= INT32[1]), (name, value)
    return event


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_every_published_event_reads_with_the_cloudevents_sdk(
        tmp_path: Path, mosquitto: Any, agent_factory: list[AgentProcess], protocol: str) -> None:
    key = Ed25519PrivateKey.generate()
    cfg = write_config(tmp_path / "config.toml", url=mosquitto.url, protocol=protocol, extra=(
        f'[link]\npublic_keys = ["{public_key_text(key.public_key())}"]\n'
        f'[kiosk]\nstore_db = "{tmp_path / "store.db"}"\n'))
    collector = Collector(mosquitto.port)
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    try:
        agent.start()
        wait_for(lambda: agent.status()["uplink"]["state"] == "connected", 20)
        emitted: dict[str, Any] = {}
        with BusClient(tmp_path / "agent.sock") as bus:
            for data in tricky():
                (ev_id,) = bus.emit([{"type": "o2o.kiosk.survey", "data": data}])
                assert ev_id is not None
                emitted[ev_id] = data
            with pytest.raises(AgentError, match="limit is"):
                bus.emit([{"type": "o2o.kiosk.survey", "data": exactly(MAX_DATA_BYTES + 1)}])
        # an event the agent makes itself, with foreign text in it: a document for another
        # store is refused and recorded as o2o.link.refused
        now = time.time()
        foreign = sign(key, "orders", "store-9 " + RTL + EMOJI, "all", 1, now - 5, now + 60,
                       {"mode": "snapshot", "rows": []})
        publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ce-upstream")
        publisher.connect("127.0.0.1", mosquitto.port)
        publisher.loop_start()
        publisher.publish("o2o/v1/store-1/all/orders", foreign, qos=1).wait_for_publish(10)
        publisher.disconnect()  # first: loop_stop alone waits out the loop's 1 s select
        publisher.loop_stop()

        def arrived() -> bool:
            events = collector.events()
            return set(emitted) <= set(events) and any(
                e["type"] == "o2o.link.refused" for e in events.values())

        wait_for(arrived, 30, what=lambda: f"events upstream: {len(collector.events())}")
    finally:
        collector.close()
        agent.stop()

    received = datetime.now(UTC)
    types: set[str] = set()
    seen: set[tuple[str, str]] = set()
    refusals: list[str] = []
    for payload, props in collector.messages:
        # the MQTT binding (3.2.1): Content Type is the media type of an event format, and a
        # receiver takes a value starting with application/cloudevents as structured mode
        # (MQTT 3.1.1 has no properties: the JSON event format is implied)
        content_type = getattr(props, "ContentType", None)
        assert content_type == ("application/cloudevents-batch+json" if protocol == "5"
                                else None), content_type
        # structured mode MAY carry the attributes as user properties too (3.2.3); when it
        # does, the names are the attribute names unchanged
        for name, _ in getattr(props, "UserProperty", None) or []:
            assert name in CONTEXT or EXTENSION_NAME.fullmatch(name), name
        batch = json.loads(payload.decode("utf-8"))  # strict UTF-8, a JSON array (batch format)
        assert isinstance(batch, list) and batch
        for raw in batch:
            event = check_event(raw, received)
            assert (raw["source"], raw["id"]) not in seen, "an id repeated within the source"
            seen.add((raw["source"], raw["id"]))
            types.add(event.get_type())
            if event.get_type() == "o2o.link.refused":
                refusals.append(json.dumps(event.get_data(), ensure_ascii=False))
            if raw["id"] in emitted:
                assert strict_equal(event.get_data(), emitted[raw["id"]]), raw["id"]
    assert {"o2o.agent.started", "o2o.link.refused", "o2o.kiosk.survey"} <= types, types
    assert any("store-9 " + RTL in text for text in refusals), refusals  # foreign text intact
    assert len({ev_id for _, ev_id in seen} & set(emitted)) == len(emitted) == len(tricky())


# any JSON a bus client may send: text of any Unicode scalar value (no lone surrogates: the
# bus refuses those), integers past 64 bits, floats down to subnormals and -0.0
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-10**40, max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(st.characters(codec="utf-8")),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(st.characters(codec="utf-8"), max_size=8), inner, max_size=5),
    max_leaves=30)
# read at import: the tests' environment drops O2O_EDGE_* variables (tests/conftest.py)
EXAMPLES = int(os.environ.get("O2O_EDGE_ABUSE_EXAMPLES", "15"))


def test_any_json_a_client_emits_reads_back_equal_in_the_sdk(
        tmp_path: Path, mosquitto: Any, agent_factory: list[AgentProcess]) -> None:
    cfg = write_config(tmp_path / "config.toml", url=mosquitto.url)
    collector = Collector(mosquitto.port)
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()

    @settings(max_examples=EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(JSON_VALUES, min_size=1, max_size=20))
    def round_trip(values: list[Any]) -> None:
        with BusClient(tmp_path / "agent.sock") as bus:
            ids = bus.emit([{"type": "o2o.kiosk.survey", "data": {"v": v}} for v in values])
        assert None not in ids
        wait_for(lambda: set(ids) <= set(collector.events()), 30, what="the events upstream")
        events = collector.events()
        now = datetime.now(UTC)
        for ev_id, value in zip(ids, values, strict=True):
            got = check_event(events[str(ev_id)], now).get_data()
            assert strict_equal(got, {"v": value}), (got, value)

    try:
        round_trip()
    finally:
        collector.close()
        agent.stop()
