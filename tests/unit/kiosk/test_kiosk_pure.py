"""The kiosk's pure parts: message catalogues, content bundles, routing of hardware events,
hand-off links and the staff PIN."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from agent.contracts.events import HANDOFF_TOKEN_RE, own_id
from kiosk.app import SAMPLE_CONTENT
from kiosk.content import load_bundle, parse_manifest
from kiosk.errors import KioskError
from kiosk.handoff import handoff_url, new_token
from kiosk.i18n import HERE, Translator, load_catalogues
from kiosk.pin import MAX_TRIES, PinGate, hash_pin, verify_pin
from kiosk.routing import route_event


def test_every_catalogue_has_every_english_key() -> None:
    cats = load_catalogues()
    assert {"en", "de", "es"} <= set(cats)
    for code, cat in cats.items():
        assert set(cat) == set(cats["en"]), code
        for key, text in cat.items():  # the placeholders match English's
            assert sorted(_fields(text)) == sorted(_fields(cats["en"][key])), (code, key)


def _fields(text: str) -> list[str]:
    import string

    return [f for _, f, _, _ in string.Formatter().parse(text) if f]


def test_a_new_language_is_a_new_file(tmp_path: Path) -> None:
    for p in HERE.glob("*.json"):
        (tmp_path / p.name).write_text(p.read_text())
    (tmp_path / "fr.json").write_text(json.dumps({"language.name": "Français",
                                                  "staff.call": "Appeler le personnel"}))
    t = Translator(load_catalogues(tmp_path), "fr")
    assert "fr" in t.languages and t.name("fr") == "Français"
    assert t("staff.call") == "Appeler le personnel"
    assert t("home.checkin") == "Pick up an order"  # missing: English
    assert t("result.pickup.ok", name="Anna") == \
        "Thanks, Anna — your order is on its way, about {minutes} min."
    (tmp_path / "xx.json").write_text('{"staff.call": "x"}')
    with pytest.raises(KioskError, match=r"needs \"language\.name\""):
        load_catalogues(tmp_path)


def _manifest(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"version": 2, "pages": [
        {"id": "a", "title": {"en": "A"}, "link": "https://shop.example/p/a?x=1",
         "open_by": {"nfc": ["04A1B2C3D4E5F6"], "qr": ["https://Shop.example/p/a"],
                     "zones": ["app:u:1:2:immediate"]}},
        {"id": "b", "title": {"en": "B", "de": "B-de"}}]}
    base.update(over)
    return base


def test_bundle_indexes_and_sample() -> None:
    b = parse_manifest(_manifest())
    assert b.page_for("nfc", "04a1b2c3d4e5f6").id == "a"  # type: ignore[union-attr]
    assert b.page_for("qr", "shop.example/p/a").id == "a"  # type: ignore[union-attr]
    assert b.page_for("zone", "app:u:1:2:immediate").id == "a"  # type: ignore[union-attr]
    assert b.attract == ("a", "b")
    sample = load_bundle(SAMPLE_CONTENT)
    assert sample.attract and sample.privacy_url.startswith("https://")


@pytest.mark.parametrize("change,expected", [
    ({"version": 0}, "version: must be a whole number"),
    ({"pages": []}, "pages: must be a non-empty list"),
    ({"attract": ["zzz"]}, "attract: no page 'zzz'"),
    ({"survey": {"question": {"en": "?"}, "scale": 7}}, "survey.scale: must be 5"),
    ({"privacy_url": "http://x.example"}, "privacy_url: must be an https:// link"),
    ({"pages": [{"id": "a", "title": {"de": "nur deutsch"}}]}, 'needs an English text ("en")'),
    ({"pages": [{"id": "a", "title": {"en": "x\x1b[2J"}}]}, "contains control characters"),
    ({"pages": [{"id": "A B", "title": {"en": "x"}}]}, "pages[0].id: must be lowercase"),
    ({"pages": [{"id": "a", "title": {"en": "x"}}, {"id": "a", "title": {"en": "y"}}]},
     "'a' is used twice"),
    ({"pages": [{"id": "a", "title": {"en": "x"}, "open_by": {"qr": ["Q1"]}},
                {"id": "b", "title": {"en": "y"}, "open_by": {"qr": ["Q1"]}}]},
     "both open on qr 'Q1'"),
])
def test_bad_bundles_are_refused_with_the_place(change: dict[str, Any], expected: str) -> None:
    with pytest.raises(KioskError) as exc:
        parse_manifest(_manifest(**change), "content/manifest.json")
    assert expected in str(exc.value) and "content/manifest.json" in str(exc.value)


def test_routing_of_hardware_events() -> None:
    b = parse_manifest(_manifest())
    tap = {"type": "o2o.nfc.tap", "data": {"tag": {"id": "04a1b2c3d4e5f6", "kind": "shelf"}}}
    assert route_event(tap, b) == ("page", {"page": "a", "medium": "nfc"})
    by_link = {"type": "o2o.nfc.tap", "data": {"tag": {"id": "anon:1", "kind": "unregistered"},
               "records": [{"type": "uri", "class": "product", "host": "shop.example",
                            "path": "/p/a"}]}}
    assert route_event(by_link, b) == ("page", {"page": "a", "medium": "nfc"})
    card = {"type": "o2o.nfc.tap", "data": {"tag": {"id": "0102", "kind": "loyalty"}}}
    assert route_event(card, b) == ("checkin", {"request": {"kind": "loyalty", "card": "0102"},
                                                "via": "nfc"})
    pickup = {"type": "o2o.qr.scan", "data": {"class": "pickup", "order": "A-1"}}
    assert route_event(pickup, b)[1]["request"] == {"kind": "pickup", "order": "A-1"}  # type: ignore[index]
    forged = {"type": "o2o.qr.scan", "data": {"class": "rejected",
                                              "reason": "pickup-bad-signature"}}
    assert route_event(forged, b) == ("result", {"outcome": "invalid"})
    hostile = {"type": "o2o.qr.scan", "data": {"class": "rejected", "reason": "punycode-host"}}
    bank_card = {"type": "o2o.nfc.tap", "data": {"tag": {"id": "anon:2"}, "ndef": "none"}}
    zone = {"type": "o2o.ble.presence", "data": {"id": "app:u:1:2", "action": "zone",
                                                  "zone": "immediate"}}
    assert route_event(hostile, b) is None and route_event(bank_card, b) is None
    assert route_event(zone, b) == ("page", {"page": "a", "medium": "beacon"})
    assert route_event({"type": "o2o.qr.scan", "data": "x"}, b) is None


def test_handoff_link_tags() -> None:
    url = handoff_url("https://shop.example/p/a?ref=1&utm_source=mail", "qr", "autumn", "s1",
                      "k2")
    q = parse_qs(urlsplit(url).query)
    assert q == {"ref": ["1"], "utm_source": ["kiosk"], "utm_medium": ["qr"],
                 "utm_campaign": ["autumn"], "utm_content": ["s1/k2"]}
    assert "utm_medium=touch" in handoff_url("https://x.example/", "bogus", "", "s", "d")
    # a page address with a non-ASCII path or host goes into the code as its ASCII URI
    iri = handoff_url("https://bücher.example/café", "nfc", "été", "s1", "k2")
    assert iri.startswith("https://xn--bcher-kva.example/caf%C3%A9?") and iri.isascii()
    assert parse_qs(urlsplit(iri).query)["utm_campaign"] == ["été"]


def test_pin_hash_and_lockout() -> None:
    stored = hash_pin("2468")
    assert verify_pin("2468", stored) and not verify_pin("2469", stored)
    assert not verify_pin("2468", "scrypt$broken") and stored.startswith("scrypt$")
    with pytest.raises(ValueError):
        hash_pin("12a4")
    now = [0.0]
    gate = PinGate(stored, clock=lambda: now[0])
    for _ in range(MAX_TRIES):
        assert not gate.check("0000")
    assert gate.locked_for() == 60 and not gate.check("2468")  # locked: even the right PIN
    now[0] += 61
    assert gate.check("2468")
    for _ in range(MAX_TRIES):
        gate.check("0000")
    assert gate.locked_for() == 60  # a success reset the lock-out ladder
    now[0] += 61
    for _ in range(MAX_TRIES):
        gate.check("0000")
    assert gate.locked_for() == 120  # repeated lock-outs last twice as long
    assert not PinGate("").check("2468")  # no PIN configured: staff mode stays closed


def test_a_handoff_link_carries_its_events_token() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000  # 80 random bits each: no two alike
    assert all(HANDOFF_TOKEN_RE.fullmatch(t) for t in tokens)
    token = new_token(now=1_795_000_000.0)
    assert token[:10] == new_token(now=1_795_000_000.0)[:10]  # a ULID: time first, sortable
    url = handoff_url("https://shop.example/p/a", "qr", "autumn", "s1", "k2", token)
    assert parse_qs(urlsplit(url).query)["o2o_h"] == [token]
    # the agent takes the token as the hand-off event's id, and nothing else's
    assert own_id("o2o.kiosk.handoff", {"page": "a", "token": token}) == token
    assert own_id("o2o.kiosk.view", {"page": "a", "token": token}) is None
    assert own_id("o2o.kiosk.handoff", {"token": "not-a-token"}) is None
