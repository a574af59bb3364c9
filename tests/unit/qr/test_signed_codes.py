"""The signed-code envelope pickup and offer codes share (drivers/qr/signed.py): one kind's
code never opens as another's, a field too long for its length prefix is refused at making,
and a code stays readable by the kinds' own verifiers after the move."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.qr import offer, pickup, signed

KEY = Ed25519PrivateKey.generate()
NOW = 1_800_000_000
OTHER = signed.CodeKind("test", "O2OT1:", b"o2o-test", (1, 1))


def test_a_code_opens_with_its_fields_and_its_key_id() -> None:
    code = signed.seal(OTHER, KEY, NOW + 60, (b"A-1", b""))
    opened = signed.unseal(OTHER, code, [KEY.public_key()], NOW)
    assert opened.fields == (b"A-1", b"")
    assert (opened.expires, opened.key_id) == (NOW + 60, signed.key_id(KEY.public_key()))
    # scanners may lower-case what they read, and end it with a line break
    assert signed.unseal(OTHER, code.lower() + "\n", [KEY.public_key()], NOW).fields \
        == (b"A-1", b"")


def test_same_fields_same_key_another_kind_is_a_forgery() -> None:
    """The kinds differ only in their domain here: the signature alone tells them apart."""
    twin = signed.CodeKind("twin", "O2OT1:", b"o2o-twin", (1, 1))
    code = signed.seal(OTHER, KEY, NOW + 60, (b"A-1", b"store-1"))
    with pytest.raises(signed.Refused) as exc:
        signed.unseal(twin, code, [KEY.public_key()], NOW)
    assert exc.value.why == "bad-signature"
    # and the real kinds: a pickup code's body under the offer prefix is never an offer
    p = pickup.make_code(KEY, "A-1", NOW + 60, "store-1")
    with pytest.raises(offer.OfferError) as bad:
        offer.verify_code(offer.PREFIX + p[len(pickup.PREFIX):], [KEY.public_key()], NOW)
    assert bad.value.code in ("offer-malformed", "offer-bad-signature")


def test_each_refusal_has_its_reason_under_the_kinds_name() -> None:
    code = pickup.make_code(KEY, "A-1", NOW + 60)
    for text, keys, now, why in (
            (code, [Ed25519PrivateKey.generate().public_key()], NOW, "unknown-key"),
            (code, [KEY.public_key()], NOW + 60, "expired"),
            ("O2OP1:" + "A" * 2000, [KEY.public_key()], NOW, "malformed"),
            ("O2OP1:É", [KEY.public_key()], NOW, "malformed"),
            (code[:-8], [KEY.public_key()], NOW, "malformed")):
        with pytest.raises(pickup.PickupError) as exc:
            pickup.verify_code(text, keys, now)
        assert exc.value.code == f"pickup-{why}", text[:20]


def test_a_field_too_long_for_its_length_prefix_is_refused_at_making() -> None:
    with pytest.raises(ValueError, match="too long"):
        signed.seal(OTHER, KEY, NOW + 60, (b"x" * 256, b""))
    with pytest.raises(ValueError, match="before 2106"):
        signed.seal(OTHER, KEY, 2**32, (b"x", b""))
    wide = signed.CodeKind("wide", "O2OW1:", b"o2o-wide", (2,))
    assert signed.unseal(wide, signed.seal(wide, KEY, NOW + 1, (b"y" * 300,)),
                         [KEY.public_key()], NOW).fields == (b"y" * 300,)
