"""Signed `offers` documents, attacked: hostile rows (huge, deep, lone surrogates, controls and
bidi overrides, NaN and 1e400, members twice, wrong types, 100k rows), forged, expired and
replayed documents. What a store relies on: every one is either applied whole or refused
with its reason, counted, and said once per reason (never "could not apply", which is the
device's fault); the offers applied before stay; memory stays bounded; what reaches the
kiosk's home screen is plain text, whatever the document said."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from agent.bus.client import BusClient
from agent.contracts import bus as proto
from agent.contracts.events import LINK_REFUSED
from agent.errors import AgentError
from agent.keys import public_key_text
from agent.personal_offers import PersonalOffers
from agent.storelink import jws
from agent.storelink.cache import LinkCache
from agent.storelink.docs import key_id, sign, sign_jws
from agent.storelink.receiver import DocReceiver
from kiosk.app import KioskApp
from kiosk.screens.attract import AttractScreen
from kiosk.settings import KioskSettings
from simulators.scenario.shopper import until
from tests.abuse.conftest import ABUSE
from tests.conftest import AgentProcess, wait_for
from tests.integration.test_storelink import KEY as LINK_KEY
from tests.integration.test_storelink import doc as link_doc
from tests.integration.test_storelink import linked_agent, publish

NOW = 1_796_000_000.0
KEY = Ed25519PrivateKey.generate()
TOPIC = "o2o/v1/berlin-01/all/offers"
GOOD = {"subject": "app:anna", "offer": "coffee-10", "text": {"en": "10 % off coffee"}}


def key_of(subject: str) -> str:
    return hashlib.sha256(b"device-key" + subject.encode()).hexdigest()


def offers_doc(version: int, body: Any, **over: Any) -> bytes:
    args: dict[str, Any] = {"kind": "offers", "store": "berlin-01", "device": "all",
                            "version": version, "issued": NOW - 10, "expires": NOW + 86400,
                            "body": body}
    args.update(over)
    return sign_jws(KEY, **args)


def signed_text(payload: str) -> bytes:
    """A JWS over payload text written by hand: what no JSON library of ours would write."""
    return jws.sign(KEY, payload.encode("utf-8", "surrogatepass"),
                    {"alg": "EdDSA", "kid": key_id(KEY.public_key())}).encode()


def head(version: int) -> str:
    return (f'{{"o2o":"doc/2","kind":"offers","store":"berlin-01","device":"all",'
            f'"version":{version},"issued":{NOW - 10},"expires":{NOW + 86400},')


class Link:
    """The store link's receiver with the agent's offers applier, as the daemon wires them."""

    def __init__(self, tmp_path: Path) -> None:
        self.events: list[tuple[str, Any]] = []
        self.offers = PersonalOffers(key_of, set, clock=lambda: NOW)
        self.rx = DocReceiver("berlin-01", "pi-1", [public_key_text(KEY.public_key())],
                              LinkCache(tmp_path / "store.db"), {"offers": self.offers.apply},
                              lambda t, d: self.events.append((t, d)), clock=lambda: NOW)

    def refusals_said(self) -> list[str]:
        return [d["reason"] for t, d in self.events if t == LINK_REFUSED]


@pytest.fixture
def link(tmp_path: Path) -> Link:
    lk = Link(tmp_path)
    assert lk.rx.handle(TOPIC, offers_doc(1, {"offers": [GOOD]})) is not None
    return lk


def test_forged_expired_and_replayed_documents_are_refused_counted_and_said_once(
        link: Link) -> None:
    other = Ed25519PrivateKey.generate()
    good = offers_doc(1, {"offers": [GOOD]})
    protected, payload, _ = good.decode().split(".")
    forged_payload = jws.b64url(jws.b64url_decode(payload, "p").replace(b"10 %", b"90 %"))
    hostile = {
        "replayed": good,
        "bad-signature": f"{protected}.{forged_payload}.{good.decode().split('.')[2]}".encode(),
        "unknown-key": sign_jws(other, "offers", "berlin-01", "all", 5, NOW - 10, NOW + 60,
                                {"offers": [{**GOOD, "offer": "free"}]}),
        "expired": offers_doc(6, {"offers": [{**GOOD, "offer": "free"}]}, expires=NOW - 1),
        "not-yet-valid": offers_doc(7, {"offers": [GOOD]}, issued=NOW + 3600),
        "not-for-us": offers_doc(8, {"offers": [GOOD]}, store="hamburg-02"),
    }
    for _ in range(50):  # a flood: each counted, each reason said once
        for raw in hostile.values():
            assert link.rx.handle(TOPIC, raw) is None
    assert link.rx.handle(TOPIC, offers_doc(9, {"offers": [{**GOOD, "offer": "tea-5"}]}))
    assert link.rx.handle(TOPIC, offers_doc(4, {"offers": [{**GOOD, "offer": "free"}]})) \
        is None  # an older version, signed and valid, after a newer one
    assert link.rx.refused == {**{code: 50 for code in hostile}, "older-version": 1}
    assert sorted(link.refusals_said()) == sorted([*hostile, "older-version"])
    assert not link.rx.failed
    assert link.offers.offer_for("app:anna")["offer"] == "tea-5"  # type: ignore[index]


# strings a sender may put anywhere: controls, bidi overrides, lone surrogates, markup
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(["\x00", "\x1b[2J", "\u202e", "\u2066", "\ud800", "\udfff",
                              "[/]", "[@click=app.quit]", "\u0085", "\ufeff", "a", " "]),
             max_size=12).map("".join),
    st.just("x" * 5000))
HOSTILE_VALUE = st.one_of(HOSTILE_TEXT, st.none(), st.booleans(), st.integers(),
                          st.floats(allow_nan=False, allow_infinity=False),
                          st.lists(st.integers(), max_size=3),
                          st.dictionaries(st.sampled_from(["en", "de", "EN", "x"]), HOSTILE_TEXT,
                                          max_size=3))
HOSTILE_ROW = st.one_of(
    HOSTILE_VALUE,
    st.fixed_dictionaries({"subject": HOSTILE_VALUE, "offer": HOSTILE_VALUE,
                           "text": st.one_of(HOSTILE_VALUE,
                                             st.fixed_dictionaries({"en": HOSTILE_TEXT}))},
                          optional={"campaign": HOSTILE_VALUE}))


@ABUSE
@given(rows=st.lists(HOSTILE_ROW, max_size=4))
def test_hostile_rows_are_applied_whole_or_refused_never_failed(tmp_path_factory: Any,
                                                                rows: list[Any]) -> None:
    link = Link(tmp_path_factory.mktemp("link"))
    assert link.rx.handle(TOPIC, offers_doc(1, {"offers": [GOOD]})) is not None
    text = json.dumps({"offers": rows}, ensure_ascii=True)  # lone surrogates as \ud800
    applied = link.rx.handle(TOPIC, signed_text(head(2) + f'"body":{text}}}')) is not None
    assert not link.rx.failed, link.rx.last_failure
    assert applied or sum(link.rx.refused.values()) == 1
    for row in rows if applied else []:
        offer = link.offers.offer_for(row["subject"])
        assert offer is not None
        # what the bus answers the kiosk is a line of UTF-8 JSON
        proto.encode({"ok": True, "offer": offer}).decode("utf-8")
        assert all(t.encode("utf-8") for t in offer["text"].values())
    if not applied:
        assert link.offers.offer_for("app:anna")["offer"] == "coffee-10"  # type: ignore[index]


@pytest.mark.parametrize("body, code", [
    ('{"offers":[{"subject":"app:\\ud800","offer":"x","text":{"en":"hi"}}]}', "malformed"),
    ('{"offers":[{"subject":"app:b","offer":"x","text":{"en":"hi \\udfff"}}]}', "malformed"),
    ('{"offers":[{"subject":"app:b","offer":"x","text":{"en":NaN}}]}', "malformed"),
    # nothing to show: zero-width spaces, a joiner, a bidi mark, a soft hyphen and spaces
    ('{"offers":[{"subject":"app:b","offer":"x","text":{"en":"\\u200b \\u200d\\u200e'
     '\\u00ad\\u3000"}}]}', "malformed"),
    ('{"offers":[{"subject":"app:b","offer":"x","text":{"en":1e400}}]}', "malformed"),
    ('{"offers":[{"subject":"app:b","offer":"x","offer":"y","text":{"en":"hi"}}]}',
     "malformed"),
    ('{"offers":[{"subject":"app:b","offer":"x","text":{"en":"hi"}}],"offers":[]}',
     "malformed"),
    ('{"offers":' + "[" * 100_000 + "]" * 100_000 + "}", "malformed"),
    ('{"offers":[' + ",".join(["0"] * 100_000) + "]}", "malformed"),
    ('{"offers":[{"subject":"app:b","offer":"x","text":{"en":"' + "x" * 1_900_000 + '"}}]}',
     "malformed"),
    ('{"offers":[{"subject":"app:b","offer":"x","text":{"en":"' + "x" * 2_200_000 + '"}}]}',
     "oversized"),
])
def test_a_hostile_body_is_refused_and_the_offers_before_stay(link: Link, body: str,
                                                               code: str) -> None:
    raw = signed_text(head(2) + f'"body":{body}}}')
    tracemalloc.start()
    try:
        assert link.rx.handle(TOPIC, raw) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert link.rx.refused == {code: 1}, link.rx.last_failure
    assert not link.rx.failed
    assert link.refusals_said() == [code]
    assert peak < 12 * len(raw) + (8 << 20), f"{peak / 2**20:.0f} MiB to refuse it"
    assert link.offers.offer_for("app:anna")["offer"] == "coffee-10"  # type: ignore[index]
    assert link.offers.offer_for("app:b") is None


def test_the_most_offers_a_document_may_hold_are_kept_in_bounded_memory(link: Link) -> None:
    rows = [{"subject": f"app:{i:08d}-{'x' * 60}", "offer": f"offer-{i}",
             "text": {"en": "y" * 60}} for i in range(10_000)]
    raw = offers_doc(2, {"offers": rows})
    tracemalloc.start()
    try:
        assert link.rx.handle(TOPIC, raw) is not None
        kept = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert link.offers.offer_for("app:00009999-" + "x" * 60) is not None
    assert link.offers.offer_for("app:anna") is None  # a snapshot: the whole set
    assert kept < 16 << 20, f"{kept / 2**20:.1f} MiB kept for 10,000 offers"


def test_the_bus_op_answers_any_identifier_in_one_line(link: Link) -> None:
    for app in ("app:\ud800", "x" * 129, "", 7, None):
        with pytest.raises(AgentError, match="personal-offer takes"):
            link.offers.op({"id": app})
    assert link.offers.op({"id": "app:anna"})["offer"] is not None
    assert link.offers.op({"id": "app:anna\x00"})["offer"] is None


def test_doc1_with_nan_or_members_twice_is_refused(link: Link) -> None:
    """The older envelope (doc/1) parses with Python's json, which reads NaN and keeps the
    last of two members: neither may pass as signed."""
    signed = json.loads(sign(KEY, "offers", "berlin-01", "all", 3, NOW - 10, NOW + 60,
                             {"offers": [GOOD]}))
    twice = json.dumps(signed)[:-1] + ', "body": {"offers": []}}'
    nan = json.dumps({**signed, "body": {"offers": [{**GOOD, "text": {"en": float("nan")}}]}})
    for raw in (twice, nan):
        assert link.rx.handle(TOPIC, raw.encode()) is None
    assert set(link.rx.refused) <= {"bad-signature", "malformed"}
    assert sum(link.rx.refused.values()) == 2 and not link.rx.failed
    assert link.offers.offer_for("app:anna")["offer"] == "coffee-10"  # type: ignore[index]


def test_the_home_screen_shows_an_offer_text_as_plain_text() -> None:
    """An offer the agent accepted (bidi overrides and markup are not the agent's to refuse)
    reaches the public screen without them acting."""
    offer = {"offer": "x", "campaign": "",
             "text": {"en": "\u202eeerf [@click=app.quit]quit[/] \u2066now\u2069"}}

    async def run() -> str:
        app = KioskApp(KioskSettings(), connect=False)
        app.record = lambda t, d: None  # type: ignore[method-assign]

        async def answer(msg: dict[str, Any]) -> dict[str, Any]:
            return {"ok": True, "offer": offer}
        app.link.request = answer  # type: ignore[method-assign]
        async with app.run_test(size=(100, 30)) as pilot:
            app.post_message(KioskApp.AgentEvent({  # type: ignore[arg-type]
                "type": "o2o.ble.presence",
                "data": {"id": "app:a", "kind": "app", "action": "enter", "zone": "near"}}))

            def slide() -> str:
                return str(app.screen.query_one("#slide-text").render()) \
                    if isinstance(app.screen, AttractScreen) else ""
            await until(pilot, lambda: "now" in slide(), what="the offer on the home screen")
            return slide()
    shown = asyncio.run(run())
    assert shown == "eerf [@click=app.quit]quit[/] now"


def test_the_running_agent_refuses_hostile_offers_and_keeps_capturing(
        tmp_path: Path, mosquitto: Any, agent_factory: list[AgentProcess]) -> None:
    """Over a real broker: each hostile document refused under its reason, counted, said in
    the log once per reason however often it comes; the offer applied before still answered
    on the bus; capture goes on; no traceback."""
    _, agent = linked_agent(tmp_path, mosquitto, agent_factory)
    topic = "o2o/v1/store-1/all/offers"
    publish(mosquitto, topic, link_doc("offers", 5, {"offers": [GOOD]}))
    wait_for(lambda: agent.status()["link"]["accepted"].get("offers") == 1, 20,
             what=lambda: f"the offers applied: {agent.status()['link']}")
    forger = Ed25519PrivateKey.generate()
    hostile = {
        "malformed": jws.sign(LINK_KEY, json.dumps({  # ASCII JSON: the surrogate escaped
            "o2o": "doc/2", "kind": "offers", "store": "store-1", "device": "all",
            "version": 6, "issued": time.time() - 5, "expires": time.time() + 3600,
            "body": {"offers": [{**GOOD, "subject": "app:\ud800"}]}}).encode(),
            {"alg": "EdDSA", "kid": key_id(LINK_KEY.public_key())}).encode(),
        "unknown-key": link_doc("offers", 7, {"offers": []}, key=forger),
        "expired": link_doc("offers", 8, {"offers": []}, expires=time.time() - 1),
        "replayed": link_doc("offers", 5, {"offers": [GOOD]}),
        "older-version": link_doc("offers", 4, {"offers": []}),
        "oversized": b"{" + b" " * (3 << 20) + b"}",
    }
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hostile-upstream")
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:  # one connection: the helper's loop_stop costs a second a message
        for _ in range(3):
            for raw in hostile.values():
                pub.publish(topic, raw, qos=1).wait_for_publish(10)
    finally:
        pub.disconnect()
        pub.loop_stop()
    wait_for(lambda: sum(agent.status()["link"]["refused"].values()) == 3 * len(hostile), 30,
             what=lambda: f"all refused: {agent.status()['link']['refused']}")
    st = agent.status()["link"]
    assert st["refused"] == {code: 3 for code in hostile} and not st["failed"]
    lines = [ln for ln in agent.log.read_text().splitlines() if "refused a document" in ln]
    assert len(lines) == len(hostile), lines
    with BusClient(agent.socket) as bus:
        assert bus.request({"op": "personal-offer", "id": "app:anna"})["offer"]["offer"] == \
            "coffee-10"
        reply = bus.request({"op": "emit", "events": [
            {"type": "o2o.kiosk.view", "data": {"page": "still-here"}}]})
    assert reply["ok"] and reply["ids"][0], reply
    text = agent.log.read_text(errors="replace")
    assert "Traceback" not in text, text[text.index("Traceback") - 500:][:3000]


def test_a_document_nested_just_deep_enough_is_refused_not_failed(tmp_path: Path) -> None:
    """doc/1 is parsed, then written out again to check its signature: a nesting depth the
    parser takes and the writer does not (a window of a few levels below the recursion
    limit, wherever the worker's stack stands) was counted as the device's own failure."""
    link = Link(tmp_path)

    def check_all() -> None:
        for depth in range(900, 1001):
            body = "[" * depth + "]" * depth
            raw = (f'{{"o2o":"doc/1","kind":"offers","store":"berlin-01","device":"all",'
                   f'"version":{depth},"issued":{NOW - 10},"expires":{NOW + 60},'
                   f'"key_id":"{key_id(KEY.public_key())}","sig":"AAAA","body":{body}}}')
            link.rx.handle(TOPIC, raw.encode())

    asyncio.run(asyncio.to_thread(check_all))  # where the agent checks them: a worker
    assert not link.rx.failed, link.rx.last_failure
    assert set(link.rx.refused) <= {"bad-signature", "malformed"}
    assert sum(link.rx.refused.values()) == 101
