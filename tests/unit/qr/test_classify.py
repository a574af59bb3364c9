"""QR payload classification: a hostile corpus (each class of attack), signed pickup codes,
and fuzzing (any bytes give a verdict, never an exception, never a rejected payload)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.qr.classify import QrPolicy, classify
from drivers.qr.pickup import PREFIX, make_code

NOW = 1_800_000_000.0
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
POLICY = QrPolicy(domains=("shop.example", "promo.shop.example"), store="store-1",
                  pickup_keys=(KEY.public_key(),))

HOSTILE = {
    "javascript_scheme": ("javascript:alert(document.cookie)", "scheme-not-allowed"),
    "javascript_mixed_case": ("JaVaScRiPt:alert(1)", "scheme-not-allowed"),
    "data_url_html": ("data:text/html;base64,PHNjcmlwdD4=", "scheme-not-allowed"),
    "file_url": ("file:///etc/passwd", "scheme-not-allowed"),
    "intent_url": ("intent://scan/#Intent;scheme=zxing;end", "scheme-not-allowed"),
    "ftp_url": ("ftp://shop.example/x", "scheme-not-allowed"),
    "plain_http": ("http://shop.example/p/1", "insecure-scheme"),
    "not_allowlisted": ("https://evil.example/login", "host-not-allowlisted"),
    "allowlisted_as_subdomain_of_evil": ("https://shop.example.evil.com/", "host-not-allowlisted"),
    "allowlisted_name_as_suffix": ("https://notshop.example/", "host-not-allowlisted"),
    "userinfo_lookalike": ("https://shop.example@evil.com/", "userinfo-in-url"),
    "userinfo_with_password": ("https://a:b@shop.example/", "userinfo-in-url"),
    "backslash_trick": ("https://evil.com\\@shop.example/", "bad-url"),
    "punycode_host": ("https://xn--shp-8cd.example/", "punycode-host"),
    "cyrillic_o_lookalike": ("https://sh\u043ep.example/", "mixed-script-host"),
    "greek_omicron_lookalike": ("https://sh\u03bfp.example/", "mixed-script-host"),
    "fullwidth_lookalike": ("https://\uff53\uff48\uff4f\uff50.example/", "mixed-script-host"),
    "idn_host": ("https://\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444/", "non-ascii-host"),
    "ip_literal": ("https://203.0.113.7/", "ip-address-host"),
    "ipv6_literal": ("https://[2001:db8::1]/", "ip-address-host"),
    "odd_port": ("https://shop.example:8443/", "port-not-allowed"),
    "space_in_url": ("https://shop.example/a b", "bad-url"),
    "newline_in_url": ("https://shop.example/\nhttps://evil.com", "control-characters"),
    "nul_in_text": ("order\x00 42", "control-characters"),
    "escape_sequence": ("\x1b[2J\x1b]0;pwned\x07", "control-characters"),
    "c1_csi": ("\u009b31m red", "control-characters"),
    "bidi_override": ("Pay at \u202eenil-no\u202c desk", "control-characters"),
    "bidi_isolate": ("\u2066https://evil.com\u2069", "control-characters"),
    "invalid_utf8": (b"\xc3\x28 broken", "invalid-utf8"),
    "overlong_utf8_slash": (b"https://shop.example\xc0\xaf", "invalid-utf8"),
    "too_long": ("https://shop.example/?" + "a" * 3000, "too-long"),
    "empty": ("", "empty"),
    "pickup_not_base32": (PREFIX + "!!!!", "pickup-malformed"),
    "pickup_truncated": (make_code(KEY, "A1", int(NOW) + 60)[:60], "pickup-malformed"),
    "pickup_wrong_key": (make_code(OTHER_KEY, "A1", int(NOW) + 60), "pickup-unknown-key"),
    "pickup_expired": (make_code(KEY, "A1", int(NOW) - 1), "pickup-expired"),
    "pickup_other_store": (make_code(KEY, "A1", int(NOW) + 60, "store-9"), "pickup-other-store"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_corpus_is_rejected_with_its_reason(name: str) -> None:
    payload, reason = HOSTILE[name]
    verdict = classify(payload, POLICY, NOW).as_json()
    assert (verdict["class"], verdict["reason"]) == ("rejected", reason)
    raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    assert set(verdict) == {"class", "reason", "length", "sha256"}  # nothing of the payload
    assert verdict["length"] == len(raw)


def test_forged_pickup_signature_is_rejected() -> None:
    code = make_code(KEY, "A1234", int(NOW) + 600)
    body = bytearray(code.encode())
    i = len(PREFIX) + 10  # one order/expiry character changed, signature left as it was
    body[i] = ord("A") if body[i] != ord("A") else ord("B")
    assert classify(bytes(body), POLICY, NOW).reason in ("pickup-bad-signature",
                                                         "pickup-malformed")
    forged = bytearray(code.encode())
    forged[-5] = ord("A") if forged[-5] != ord("A") else ord("B")  # inside the signature
    assert classify(bytes(forged), POLICY, NOW).reason == "pickup-bad-signature"


def test_genuine_codes_and_links() -> None:
    code = make_code(KEY, "A1234-99", int(NOW) + 600, "store-1")
    assert classify(code, POLICY, NOW).as_json() == {
        "class": "pickup", "reason": None, "order": "A1234-99", "expires": int(NOW) + 600,
        "key_id": classify(code, POLICY, NOW).detail["key_id"]}
    assert classify(code.lower(), POLICY, NOW).cls == "pickup"  # scanners may lower-case
    any_store = make_code(KEY, "B7", int(NOW) + 600)
    assert classify(any_store, POLICY, NOW).detail["order"] == "B7"
    v = classify("https://promo.shop.example/bf?utm_source=flyer&utm_medium=qr"
                 "&utm_campaign=black-friday&utm_source=dup", POLICY, NOW)
    assert v.cls == "campaign"
    assert v.detail["utm"] == {"source": "flyer", "medium": "qr", "campaign": "black-friday"}
    v = classify("https://shop.example/p/SKU-123/red?utm_campaign=x", POLICY, NOW)
    assert (v.cls, v.detail["product"], v.detail["utm"]) == ("product", "SKU-123",
                                                             {"campaign": "x"})
    assert classify("https://SHOP.EXAMPLE./", POLICY, NOW).cls == "campaign"
    assert classify("LOY0012345678", POLICY, NOW).as_json() == {
        "class": "loyalty", "reason": None, "card": "LOY0012345678"}
    assert classify("Table 12: ask for Anna\n2nd floor", POLICY, NOW).cls == "text"
    assert classify("tel:+4930123456", POLICY, NOW).cls == "text"


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300),
                 st.from_regex(r"https?://[^ ]{0,40}", fullmatch=True),
                 st.builds(lambda s: PREFIX + s, st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
                                                         max_size=200))))
def test_fuzz_every_payload_gets_a_verdict(payload: bytes | str) -> None:
    v = classify(payload, POLICY, NOW)
    assert v.cls in {"pickup", "campaign", "product", "loyalty", "gtin", "text", "rejected"}
    out = json.dumps(v.as_json())
    if v.cls == "rejected":
        assert v.reason and "://" not in out


def test_make_code_refuses_bad_ids() -> None:
    with pytest.raises(ValueError, match="order id"):
        make_code(KEY, "A 1", int(NOW))
    with pytest.raises(ValueError, match="store id"):
        make_code(KEY, "A1", int(NOW), "x" * 40)
