"""Signed offer codes: made and verified offline; every way a code can be wrong refused with
its reason; never an exception other than OfferError, whatever the text."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.qr import pickup
from drivers.qr.classify import QrPolicy, classify
from drivers.qr.offer import OfferError, make_code, verify_code

KEY = Ed25519PrivateKey.generate()
NOW = 1_800_000_000


def code(**kw: object) -> str:
    args: dict[str, object] = {"code_id": "C-0001", "campaign": "spring-coffee",
                               "text_id": "coffee-20", "expires": NOW + 3600,
                               "stores": ("store-1",)}
    args.update(kw)
    return make_code(KEY, **args)  # type: ignore[arg-type]


def reason(text: str, keys: list[object] | None = None, store: str = "store-1") -> str:
    with pytest.raises(OfferError) as exc:
        verify_code(text, keys if keys is not None else [KEY.public_key()],  # type: ignore[arg-type]
                    NOW, store)
    return exc.value.code


def test_a_genuine_code_verifies_with_what_it_carries() -> None:
    offer = verify_code(code(), [KEY.public_key()], NOW, "store-1")
    assert (offer.code_id, offer.campaign, offer.text_id, offer.stores, offer.expires) == (
        "C-0001", "spring-coffee", "coffee-20", ("store-1",), NOW + 3600)
    # QR's alphanumeric mode: capitals, digits and the prefix's colon only
    assert code().isupper() and len(code()) < 200
    # a code for any store is good in every store
    assert verify_code(code(stores=()), [KEY.public_key()], NOW, "store-9").stores == ()


def test_each_way_a_code_is_wrong_has_its_reason() -> None:
    assert reason(code(expires=NOW)) == "offer-expired"
    assert reason(code(stores=("store-2", "store-3"))) == "offer-other-store"
    assert reason(code(), keys=[Ed25519PrivateKey.generate().public_key()]) == \
        "offer-unknown-key"
    raw = bytearray(base64.b32decode(code()[6:] + "=" * (-len(code()[6:]) % 8)))
    raw[12] ^= 1  # a changed code id, same signature
    forged = "O2OF1:" + base64.b32encode(bytes(raw)).decode().rstrip("=")
    assert reason(forged) in ("offer-bad-signature", "offer-malformed")
    assert reason("O2OF1:") == "offer-malformed"
    assert reason("O2OF1:!!!!") == "offer-malformed"
    assert reason("O2OF1:" + "A" * 5000) == "offer-malformed"


def test_a_pickup_signature_never_passes_for_an_offer() -> None:
    """Same key, same bytes after the prefix: the signing domains differ."""
    p = pickup.make_code(KEY, "A-1", NOW + 60, "store-1")
    assert reason("O2OF1:" + p[len(pickup.PREFIX):]) in ("offer-bad-signature",
                                                         "offer-malformed")


def test_make_refuses_fields_that_do_not_fit() -> None:
    for kw in ({"code_id": ""}, {"campaign": "a b"}, {"text_id": "Coffee"},
               {"stores": ("x,y",)}, {"expires": 2**32}):
        with pytest.raises(ValueError):
            code(**kw)


def test_the_classifier_reads_offers_beside_pickups() -> None:
    policy = QrPolicy(offer_keys=(KEY.public_key(),), store="store-1")
    v = classify(code(), policy, NOW)
    assert v.as_json() == {"class": "offer", "reason": None, "code": "C-0001",
                           "campaign": "spring-coffee", "offer": "coffee-20",
                           "expires": NOW + 3600}
    assert classify(code(expires=NOW - 1), policy, NOW).as_json()["reason"] == "offer-expired"
    # without configured keys every offer is refused, not taken for text
    assert classify(code(), QrPolicy(), NOW).as_json()["reason"] == "offer-unknown-key"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_after_the_prefix_are_refused_never_raised(blob: bytes) -> None:
    text = "O2OF1:" + base64.b32encode(blob).decode().rstrip("=")
    with pytest.raises(OfferError):
        verify_code(text, [KEY.public_key()], NOW, "store-1")
