"""A signer in another language: tests/conformance/node_signer.mjs (Node, node:crypto only)
makes its own Ed25519 key pair and signs store-link documents from what the README and
agent/storelink/docs.py say, in the JWS envelope and in doc/1; the agent trusts its public
key and applies what it signed — a config, orders, a command — and refuses a body changed
after signing.

The signed bytes are either Python's json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False) of the parsed fields or their RFC 8785 (JCS) form. The two differ in key
order (UTF-16 code units against code points) and number text ("1e-7" and "0.00001" against
Python's "1e-07" and "1e-05"): a signer writing JSON the JavaScript way is trusted too."""

from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.bus.client import BusClient
from agent.keys import parse_public_key
from agent.storelink.docs import DocRefused, key_id, verify
from tests.conftest import AgentProcess, wait_for, write_config

SIGNER = Path(__file__).with_name("node_signer.mjs")
REPLIES = "o2o/v1/store-1/dev-1/cmd-reply/conformance"  # inside the device's reply namespace
NAME = "Zo\u00eb \u05e9\u05dc\u05d5\u05dd \U0001f600 \"Q\" \\"
# keys whose order differs between code points and UTF-16 code units: U+FF01 sorts before
# U+1F600 by code point, after it by UTF-16 unit (0xD83D)
ORDERED_KEYS = {"\uff01": 1, "\U0001f600": 2, "\ue000": 3, "\U00010000": 4, "a": 5}
SMALL_FLOATS = [1e-7, 1.5e-7, 1e-5, 0.0001, -2.5e-10]


def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not installed (apt-get install nodejs): the Node signer needs it")
    return path


def sign_with_node(*docs: dict[str, Any]) -> tuple[str, list[bytes]]:
    """The Node signer's public key (hex) and its documents."""
    now = time.time()
    specs = [{"store": "store-1", "device": "all", "version": 1, "issued": now - 5,
              "expires": now + 3600, **d} for d in docs]
    res = subprocess.run([node(), str(SIGNER)], input=json.dumps({"docs": specs}),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert key_id(parse_public_key(out["public_key"])) == out["key_id"]
    return out["public_key"], [d.encode() for d in out["docs"]]


def verified(public: str, raw: bytes) -> Any:
    key = parse_public_key(public)
    return verify(raw, {key_id(key): key}, "store-1", "dev-1", time.time(), {})


def random_doubles(n: int) -> list[float]:
    rnd = random.Random(15)  # fixed: a failure names the same numbers again
    out: list[float] = []
    while len(out) < n:
        f = struct.unpack("<d", struct.pack("<Q", rnd.getrandbits(64)))[0]
        if f == f and abs(f) != float("inf"):
            out.append(f)
    return out


def test_the_node_signers_canonical_form_is_the_one_the_agent_verifies() -> None:
    body = {"floats": [0.1, -0.0, 2.5, 5e-324, 1.7976931348623157e308, *SMALL_FLOATS,
                       *random_doubles(2000)],
            "keys": ORDERED_KEYS, "text": NAME + "\u2028\x00\x1f\x7f\ufeff",
            "ints": [0, -1, 2**53, 10**20]}
    public, (good, tampered) = sign_with_node(
        {"kind": "orders", "body": body},
        {"kind": "orders", "body": body, "tamper": {**body, "text": NAME}})
    doc = verified(public, good)
    assert doc.kind == "orders" and doc.body["keys"] == ORDERED_KEYS
    with pytest.raises(DocRefused) as refused:
        verified(public, tampered)
    assert refused.value.code == "bad-signature"


@pytest.mark.parametrize("body", [{"keys": ORDERED_KEYS}, {"floats": SMALL_FLOATS}],
                         ids=["key-order", "small-numbers"])
def test_a_javascript_signer_writing_json_its_own_way_is_trusted(body: dict[str, Any]) -> None:
    public, (raw,) = sign_with_node({"kind": "orders", "body": body, "canonical": "js"})
    assert verified(public, raw).body == body


class Upstream:
    """The platform's side of the broker: publishes documents, asks commands, reads replies."""

    def __init__(self, port: int) -> None:
        self.replies: dict[bytes, dict[str, Any]] = {}
        self.ready = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="node-upstream",
                             protocol=mqtt.MQTTv5)
        self.c.on_subscribe = lambda *a: self.ready.set()
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        self.c.subscribe(REPLIES, qos=1)
        self.c.loop_start()
        assert self.ready.wait(10), "the upstream's subscription was not confirmed"

    def _on_message(self, c: Any, u: Any, msg: Any) -> None:
        corr = bytes(getattr(msg.properties, "CorrelationData", b"") or b"")
        self.replies[corr] = json.loads(msg.payload)

    def publish(self, topic: str, payload: bytes, corr: bytes = b"") -> None:
        props = None
        if corr:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ResponseTopic = REPLIES
            props.CorrelationData = corr
        self.c.publish(topic, payload, qos=1, properties=props).wait_for_publish(10)

    def close(self) -> None:
        self.c.disconnect()  # first: loop_stop alone waits out the loop's 1 s select
        self.c.loop_stop()


def test_the_node_signers_jws_is_verified_from_its_bytes() -> None:
    """In the JWS envelope the signature covers the bytes sent: JSON.stringify's own number
    text and key order need no agreement with anything."""
    body = {"floats": [0.1, -0.0, 5e-324, 1.7976931348623157e308, *SMALL_FLOATS,
                       *random_doubles(2000)],
            "keys": ORDERED_KEYS, "text": NAME + "\u2028\x00\x1f\x7f\ufeff"}
    public, (good, tampered) = sign_with_node(
        {"kind": "orders", "body": body, "envelope": "jws"},
        {"kind": "orders", "body": body, "envelope": "jws", "tamper": {**body, "text": NAME}})
    assert good.count(b".") == 2 and not good.startswith(b"{")  # a compact JWS
    doc = verified(public, good)
    assert {k: v for k, v in doc.body.items() if k != "floats"} == {
        k: v for k, v in body.items() if k != "floats"}
    assert list(doc.body["keys"]) == list(ORDERED_KEYS)
    # each number the double JavaScript meant: JSON.stringify writes a whole double below
    # 1e21 as digits ("15376716534041108000"), which Python reads as that exact integer; as a
    # double it is the number sent. Upstreams send values that must stay exact as strings.
    assert [float(x) for x in doc.body["floats"]] == body["floats"]
    with pytest.raises(DocRefused) as refused:
        verified(public, tampered)
    assert refused.value.code == "bad-signature"


@pytest.mark.parametrize("envelope", ["jws", "doc/1"])
def test_a_real_agent_applies_what_the_node_signer_signed(
        tmp_path: Path, mosquitto: Any, agent_factory: list[AgentProcess],
        envelope: str) -> None:
    rows = [{"order_id": "A-1042", "code": "K7Q2M9", "first_name": NAME, "status": "ready"}]
    meta = {"keys": ORDERED_KEYS, "floats": [0.1, 5e-324, 1e-5, 1.5e-7, 2.5]}
    public, (config, orders, ping, forged) = sign_with_node(*({**d, "envelope": envelope} for d in (
        {"kind": "config", "device": "dev-1",
         "body": {"sections": {"privacy": {"retention_days": 30}}}},
        {"kind": "orders", "body": {"mode": "snapshot", "rows": rows, "meta": meta}},
        {"kind": "cmd", "device": "dev-1", "body": {"name": "ping", "args": {}}},
        {"kind": "orders", "version": 2, "body": {"mode": "snapshot", "rows": rows},
         "tamper": {"mode": "snapshot", "rows": [{**rows[0], "first_name": "Mallory"}]}})))
    assert orders.startswith(b"{" if envelope == "doc/1" else b"ey")
    cfg = write_config(tmp_path / "config.toml", url=mosquitto.url, extra=(
        f'[link]\npublic_keys = ["{public}"]\n[kiosk]\nstore_db = "{tmp_path / "store.db"}"\n'))
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    wait_for(lambda: agent.status()["uplink"]["state"] == "connected", 20)
    upstream = Upstream(mosquitto.port)

    def link() -> dict[str, Any]:
        return dict(agent.status()["link"])

    def checkin() -> dict[str, Any]:
        with BusClient(tmp_path / "agent.sock") as bus:
            reply = bus.request({"op": "checkin",
                                 "request": {"kind": "pickup", "code": "K7Q2M9"}})
        return dict(reply["result"])

    try:
        upstream.publish("o2o/v1/store-1/all/orders", orders)
        wait_for(lambda: link()["applied"].get("orders/all") == 1, 20,
                 what=lambda: f"orders applied: {link()}")
        assert checkin() == {"outcome": "pickup.ready", "name": NAME, "alert": ANY}

        upstream.publish("o2o/v1/store-1/dev-1/config", config)
        wait_for(lambda: agent.status()["agent"]["config_version"] == 1, 20,
                 what=lambda: f"config applied: {link()}")

        upstream.publish("o2o/v1/store-1/dev-1/cmd/ping", ping, corr=b"node-1")
        wait_for(lambda: b"node-1" in upstream.replies, 20, what="the answer to ping")
        answer = upstream.replies[b"node-1"]
        assert answer["ok"] and answer["result"]["pong"] is True, answer

        upstream.publish("o2o/v1/store-1/all/orders", forged)
        wait_for(lambda: link()["refused"].get("bad-signature") == 1, 20,
                 what=lambda: f"the forged orders refused: {link()}")
        assert link()["applied"].get("orders/all") == 1
        assert checkin() == {"outcome": "pickup.ready", "name": NAME,  # nothing of Mallory
                             "alert": ANY}
        assert set(link()["refused"]) == {"bad-signature"}
    finally:
        upstream.close()
        assert agent.stop() == 0
