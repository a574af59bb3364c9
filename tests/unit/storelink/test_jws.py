"""The JWS envelope (RFC 7515, EdDSA per RFC 8037): the published Ed25519 example reproduced
and verified in both serializations, documents in it verified from the exact bytes sent (a
signer's own JSON style is no concern), each way to bend the envelope refused with its reason,
the doc/1 envelope still accepted, and a doc/1 signer with another float style refused for
the reason stated."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.storelink import jws
from agent.storelink.docs import (
    DocRefused,
    canonical,
    key_id,
    sign,
    sign_jws,
    unverified_fields,
    verify,
)

# RFC 8037 appendix A.1 (the key), A.4 (the signature) and A.5 (its verification)
RFC_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC_PAYLOAD = b"Example of Ed25519 signing"
RFC_JWS = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-"
    "09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)

NOW = 1_796_000_000.0
KEY = Ed25519PrivateKey.generate()
KEYS = {key_id(KEY.public_key()): KEY.public_key()}
BODY = {
    "mode": "snapshot",
    "rows": [
        {
            "order_id": "A-1",
            "code": "K7Q2M9",
            "first_name": "Zo\u00eb \U0001f600",
            "status": "ready",
            "deposit": 0.1,
            "tiny": 1e-7,
        }
    ],
}


def fields(**over: Any) -> dict[str, Any]:
    return {
        "o2o": "doc/2",
        "kind": "orders",
        "store": "berlin-01",
        "device": "all",
        "version": 3,
        "issued": NOW - 10,
        "expires": NOW + 3600,
        "body": BODY,
        **over,
    }


def compact(
    payload: bytes, header: dict[str, Any] | None = None, key: Ed25519PrivateKey = KEY
) -> bytes:
    head = {"alg": "EdDSA", "kid": key_id(key.public_key())} if header is None else header
    return jws.sign(key, payload, head).encode()


def check(raw: bytes, keys: dict[str, Ed25519PublicKey] = KEYS) -> Any:
    return verify(raw, keys, "berlin-01", "pi-1", NOW, {})


def refused(raw: bytes) -> str:
    with pytest.raises(DocRefused) as exc:
        check(raw)
    assert str(exc.value).startswith(f"{exc.value.code}: ")
    return str(exc.value)


def test_the_rfc_8037_example_is_reproduced_and_verified() -> None:
    key = Ed25519PrivateKey.from_private_bytes(jws.b64url_decode(RFC_D, "d"))
    assert jws.b64url(key.public_key().public_bytes_raw()) == RFC_X
    assert jws.sign(key, RFC_PAYLOAD, {"alg": "EdDSA"}) == RFC_JWS
    public = Ed25519PublicKey.from_public_bytes(jws.b64url_decode(RFC_X, "x"))
    parsed = jws.parse(RFC_JWS.encode())
    assert parsed.payload == RFC_PAYLOAD and parsed.kid is None and parsed.verifies(public)
    # the same JWS in the flattened JSON serialization (RFC 7515 section 7.2.2)
    protected, payload, signature = RFC_JWS.split(".")
    flat = json.dumps({"payload": payload, "protected": protected, "signature": signature})
    assert jws.parse(flat.encode()).verifies(public)
    other = Ed25519PrivateKey.generate().public_key()
    assert not parsed.verifies(other)


def test_a_document_in_the_jws_envelope_is_verified_from_its_bytes() -> None:
    doc = check(sign_jws(KEY, "orders", "berlin-01", "all", 3, NOW - 10, NOW + 3600, BODY))
    assert (doc.kind, doc.version, doc.body, doc.key_id) == ("orders", 3, BODY, next(iter(KEYS)))
    # a signer writing JSON its own way: spaces, escapes, key order, exponents with "E" and
    # "+", a whole number as 1.0e2: the bytes are what was signed, their values are read
    own_style = (
        '{ "body": {"rows": [{"order_id": "A-1", "code": "K7Q2M9", "first_name": '
        '"Zo\\u00eb \\ud83d\\ude00", "status": "ready", "deposit": 1E-1, '
        '"tiny": 1.0E-7, "count": 1.0e+2}], "mode": "snapshot"},\n "version": 3, '
        f'"o2o": "doc/2", "kind": "orders", "store": "berlin-01", "device": "all", '
        f'"issued": {NOW - 10}, "expires": {NOW + 3600:.1f}' + "}"
    )
    doc = check(compact(own_style.encode()))
    assert doc.body["rows"][0] == {**BODY["rows"][0], "count": 100.0}  # type: ignore[index]
    # flattened, and without "kid": the trusted key that made it is found
    protected, payload, signature = compact(own_style.encode(), {"alg": "Ed25519"}).split(b".")
    flat = {
        "protected": protected.decode(),
        "payload": payload.decode(),
        "signature": signature.decode(),
    }
    assert check(json.dumps(flat).encode()).key_id == next(iter(KEYS))


def test_the_doc_1_envelope_is_still_accepted_and_a_float_style_of_its_own_is_not() -> None:
    raw = sign(KEY, "orders", "berlin-01", "all", 3, NOW - 10, NOW + 3600, BODY)
    assert check(raw).body == BODY
    # doc/1's signature is over a canonical text the agent makes again from the parsed values
    # (Python's json.dumps or RFC 8785). A signer printing floats with 17 significant digits
    # ("%.17g": 0.10000000000000001) signed a text that is neither: refused, and the same
    # signer's bytes in a JWS are taken as they are.
    doc: dict[str, Any] = {**fields(), "o2o": "doc/1", "key_id": next(iter(KEYS))}
    text = canonical(doc).decode().replace('"deposit":0.1', '"deposit":0.10000000000000001')
    assert "0.10000000000000001" in text and json.loads(text) == doc
    doc["sig"] = base64.b64encode(KEY.sign(text.encode())).decode()
    assert refused(json.dumps(doc).encode()).startswith("bad-signature:")
    payload = json.dumps(fields()).replace('"deposit": 0.1', '"deposit": 0.10000000000000001')
    assert "0.10000000000000001" in payload
    assert check(compact(payload.encode())).body == BODY


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (lambda: compact(json.dumps(fields()).encode(), {"alg": "none"}), "unsigned: "),
        (
            lambda: compact(json.dumps(fields()).encode(), {"alg": "HS256", "kid": "x"}),
            "malformed: the JWS algorithm 'HS256' is not taken",
        ),
        (
            lambda: compact(json.dumps(fields()).encode(), {"alg": "EdDSA", "crit": ["exp"]}),
            'malformed: the JWS header member "crit"',
        ),
        (
            lambda: compact(json.dumps(fields()).encode(), {"alg": "EdDSA", "b64": False}),
            'malformed: the JWS header member "b64"',
        ),
        (
            lambda: compact(json.dumps(fields()).encode(), {"alg": "EdDSA", "kid": "0badc0de"}),
            "unknown-key: ",
        ),
        (
            lambda: compact(b'{"o2o": "doc/2", "o2o": "doc/1"}'),
            "malformed: member 'o2o' given twice",
        ),
        (
            lambda: compact(json.dumps(fields(o2o="doc/1")).encode()),
            'malformed: the JWS payload is not a document ("o2o": "doc/2")',
        ),
        (lambda: compact(b"[1, 2]"), "malformed: the JWS payload is not a document"),
        (lambda: compact(b'{"n": NaN}'), "malformed: the JWS payload has NaN"),
        (lambda: compact(json.dumps(fields()).encode()) + b"=", "malformed: the JWS signature is"),
        (lambda: b"eyJhbGciOiJFZERTQSJ9.e30", "malformed: not a JWS"),
        (lambda: b"e\xff.a.b", "malformed: not a JWS"),
        (
            lambda: json.dumps({"signatures": [], "payload": "e30"}).encode(),
            "malformed: a JWS with one signature is taken",
        ),
        (
            lambda: json.dumps(
                {
                    "protected": "eyJhbGciOiJFZERTQSJ9",
                    "header": {"kid": "x"},
                    "payload": "e30",
                    "signature": "",
                }
            ).encode(),
            "malformed: an unprotected JWS header is not taken",
        ),
    ],
    ids=[
        "alg-none",
        "alg-hs256",
        "crit",
        "b64",
        "unknown-kid",
        "duplicate-member",
        "wrong-format",
        "not-an-object",
        "nan",
        "padding",
        "two-parts",
        "not-ascii",
        "general-serialization",
        "unprotected-header",
    ],
)
def test_each_bent_envelope_is_refused_with_its_reason(raw: Any, says: str) -> None:
    assert refused(raw()).startswith(says)


def test_a_changed_byte_anywhere_is_a_bad_signature() -> None:
    good = compact(json.dumps(fields()).encode())
    protected, payload, signature = good.decode().split(".")
    changed = json.dumps(fields(version=4)).encode()
    assert refused(f"{protected}.{jws.b64url(changed)}.{signature}".encode()).startswith(
        "bad-signature:"
    )
    # the last character's spare bits: the same bytes, a second spelling of the signature
    last = signature[-1]
    spare = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = spare[spare.index(last) ^ 1]
    assert refused(f"{protected}.{payload}.{signature[:-1]}{twin}".encode()).startswith(
        "malformed: the JWS signature is not base64url in its one spelling"
    )


def test_what_a_jws_names_is_read_for_erasure_and_replies_without_trusting_it() -> None:
    raw = compact(json.dumps(fields(body={"response_topic": "o2o/v1/x", "name": "ping"})).encode())
    assert unverified_fields(raw) == fields(body={"response_topic": "o2o/v1/x", "name": "ping"})
    assert unverified_fields(b"eyJ.garbage") is None and unverified_fields(b"{") is None
    assert unverified_fields(sign(KEY, "orders", "s", "all", 1, 0, 1, {}))["o2o"] == "doc/1"  # type: ignore[index]


def test_erasing_a_shopper_blanks_the_cached_jws_that_names_them(tmp_path: Path) -> None:
    from agent.checkin import StoreDb
    from agent.storelink.cache import LinkCache

    StoreDb(tmp_path / "store.db")  # the store database the cache lives in
    cache = LinkCache(tmp_path / "store.db")
    raw = sign_jws(KEY, "orders", "berlin-01", "all", 3, NOW - 10, NOW + 3600, BODY)
    assert "Zo\u00eb".encode() not in raw  # base64url: the bytes do not show the name
    cache.store("orders", "all", 3, raw)
    assert cache.erase_subject({"Somebody Else"}) == 0
    assert cache.erase_subject({"Zo\u00eb \U0001f600"}) == 1
    assert cache.document("orders", "all") in (None, b"")
