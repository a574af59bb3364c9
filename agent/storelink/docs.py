"""Signed downstream documents: everything from upstream comes in one of two envelopes.

A JWS (agent/storelink/jws.py: compact or flattened, Ed25519, "kid" the key id below) whose
payload is the document's JSON, written however the signer's language writes JSON:

    {"o2o": "doc/2", "kind": "orders", "store": "berlin-01", "device": "all",
     "version": 42, "issued": 1796000000, "expires": 1796086400, "body": {...}}

The signature covers the exact bytes sent: nothing is canonicalized. This is the format to sign
in (`o2o-edge sign`). The older doc/1, still accepted while upstreams move over:

    {"o2o": "doc/1", "kind": "orders", "store": "berlin-01", "device": "all",
     "version": 42, "issued": 1796000000, "expires": 1796086400, "body": {...},
     "key_id": "3f2a9c01", "sig": "<base64 Ed25519 signature>"}

The signature (standard padded base64 of the Ed25519 signature; `key_id` is the first 8 hex
digits of the SHA-256 of the raw 32-byte public key) covers every other field, so no field can
be changed or added unseen. The signed bytes are either of two canonical forms of those fields,
whichever the signer's language makes naturally: RFC 8785 (JCS: keys sorted by UTF-16 code
units, numbers as ECMAScript writes them — what a JavaScript, Go or Java signer follows) or
Python's `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)` (keys by code
point, floats as `repr`). They agree on every document without floats and without keys outside
the Basic Multilingual Plane. A document is refused — with a reason that is
counted and reported, and never applied — when it is oversized, not JSON, not this format,
unsigned, signed by a key that is not trusted, badly signed, for another store or device,
not yet valid or expired, or not newer than the version already applied for its kind and
scope (a replay of the same document included). Key rotation is a "keys" document signed
with a key trusted now, naming the keys to trust from then on.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent.contracts import jcs
from agent.errors import AgentError, Reason
from agent.keys import parse_public_key
from agent.storelink import jws

FORMAT = "doc/1"
FORMAT_JWS = "doc/2"  # the payload of a JWS envelope
KINDS = ("config", "content", "orders", "appointments", "consent", "keys", "cmd", "catalog",
         "offers")
MAX_BYTES = 2 * 1024 * 1024  # a document; its JWS carries it in base64url, a third more
MAX_ENVELOPE = MAX_BYTES * 4 // 3 + jws.MAX_HEADER + 128
CLOCK_SKEW_S = 300.0  # a document "issued" a little in the future is still fine
MAX_VERSION = 2**63 - 1  # versions are kept in SQLite INTEGER columns
MAX_TIME = 2.0**53  # "issued"/"expires": seconds, exact as a float; beyond is no time at all


class DocRefused(AgentError):
    """A document (or command) refused for what it is or says; `code` is the refusal's
    short reason, counted in the status and reported upstream (o2o.link.refused)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(Reason.DOCUMENT, f"{code}: {detail}")
        self.code = code


class DocDeferred(AgentError):
    """A good document that cannot be applied yet: it waits for what it names (content
    files by hash). Not refused, not recorded as applied; tried again when they arrive."""

    def __init__(self, needs: list[str], detail: str) -> None:
        super().__init__(Reason.DOCUMENT, detail)
        self.needs = needs


@dataclass(frozen=True)
class Doc:
    kind: str
    store: str
    device: str  # a device id, or "all"
    version: int
    issued: float
    expires: float
    body: Any
    key_id: str

    @property
    def scope(self) -> str:
        return "all" if self.device == "all" else "device"


def key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:8]


def canonical(doc: Mapping[str, Any]) -> bytes:
    fields = {k: v for k, v in doc.items() if k != "sig"}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def _verifies(key: Ed25519PublicKey, signature: bytes, doc: Mapping[str, Any]) -> bool:
    try:
        key.verify(signature, canonical(doc))
        return True
    except InvalidSignature:
        pass
    try:  # a signer in another language: RFC 8785, costs a second check only on a mismatch
        key.verify(signature, jcs.canonicalize({k: v for k, v in doc.items() if k != "sig"}))
        return True
    except (InvalidSignature, AgentError):
        return False


def sign(private: Ed25519PrivateKey, kind: str, store: str, device: str, version: int,
         issued: float, expires: float, body: Any) -> bytes:
    """A signed document, as upstream (and the tests) make them."""
    doc: dict[str, Any] = {"o2o": FORMAT, "kind": kind, "store": store, "device": device,
                           "version": version, "issued": issued, "expires": expires,
                           "body": body, "key_id": key_id(private.public_key())}
    doc["sig"] = base64.b64encode(private.sign(canonical(doc))).decode()
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _field(doc: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DocRefused("malformed", f"field {name!r} is missing or of the wrong type")
    return value


def _time(doc: Mapping[str, Any], name: str) -> float:
    value = _field(doc, name, (int, float))
    if not -MAX_TIME <= value <= MAX_TIME:  # NaN and infinities fail this too
        raise DocRefused("malformed", f"field {name!r} is not a time in seconds")
    return float(value)


def sign_jws(private: Ed25519PrivateKey, kind: str, store: str, device: str, version: int,
             issued: float, expires: float, body: Any) -> bytes:
    """A signed document in the JWS envelope (compact), as `o2o-edge sign` makes them."""
    payload = {"o2o": FORMAT_JWS, "kind": kind, "store": store, "device": device,
               "version": version, "issued": issued, "expires": expires, "body": body}
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return jws.sign(private, text.encode(), {"alg": "EdDSA", "kid": key_id(private.public_key())}
                    ).encode("ascii")


def unverified_fields(raw: bytes) -> dict[str, Any] | None:
    """The document's fields as sent (a doc/1 document, or a JWS's payload), signature NOT
    checked: for reading what a message names (erasure, where a command's answer goes),
    never for acting on it. None when there are none to read."""
    try:
        if raw.lstrip()[:1] == b"{":
            outer = json.loads(raw)
            if not isinstance(outer, dict) or "payload" not in outer or "o2o" in outer:
                return outer if isinstance(outer, dict) else None  # doc/1 (or nothing)
        fields = jws.loads(jws.parse(raw).payload, "JWS payload")
    except (ValueError, RecursionError):  # JwsError is a ValueError
        return None
    return fields if isinstance(fields, dict) else None


def _envelope(raw: bytes, keys: Mapping[str, Ed25519PublicKey]) -> tuple[dict[str, Any], str]:
    """The signed fields of `raw` and the id of the key that signed them, or DocRefused."""
    if raw.lstrip()[:1] == b"e":  # a compact JWS: its header is base64url of "{...", "e..."
        return _from_jws(raw, keys)
    if len(raw) > MAX_BYTES:
        raise DocRefused("oversized", f"{len(raw)} bytes, at most {MAX_BYTES}")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DocRefused("malformed", f"not JSON ({str(exc)[:120]})") from None
    except RecursionError:  # nested deeper than the parser goes: no document of ours is
        raise DocRefused("malformed", "not JSON (nested too deeply)") from None
    if isinstance(doc, dict) and "payload" in doc and "o2o" not in doc:
        return _from_jws(raw, keys)  # a flattened JWS
    if not isinstance(doc, dict) or doc.get("o2o") != FORMAT:
        raise DocRefused("malformed", f"not a signed document (a JWS, or {FORMAT})")
    sig = doc.get("sig")
    if not isinstance(sig, str) or not sig:
        raise DocRefused("unsigned", "no signature")
    kid = _field(doc, "key_id", str)
    key = _trusted(keys, kid)
    try:
        good = _verifies(key, base64.b64decode(sig, validate=True), doc)
    except (binascii.Error, ValueError):
        good = False
    except RecursionError:  # parsed, but too deep to write out again for the check
        raise DocRefused("malformed", "not JSON (nested too deeply)") from None
    if not good:
        raise DocRefused("bad-signature", "the signature does not match the document")
    return doc, kid


def _from_jws(raw: bytes, keys: Mapping[str, Ed25519PublicKey]) -> tuple[dict[str, Any], str]:
    try:
        envelope = jws.parse(raw)
    except jws.JwsError as exc:
        raise DocRefused(exc.code, str(exc)) from None
    kid = envelope.kid
    if kid is not None:
        good = envelope.verifies(_trusted(keys, kid))
    else:  # no "kid": whichever trusted key made the signature (there are one or two)
        kid = next((k for k, key in keys.items() if envelope.verifies(key)), None)
        good = kid is not None
    if not good or kid is None:
        raise DocRefused("bad-signature", "the signature does not match the document")
    if len(envelope.payload) > MAX_BYTES:
        raise DocRefused("oversized", f"{len(envelope.payload)} bytes, at most {MAX_BYTES}")
    try:
        fields = jws.loads(envelope.payload, "JWS payload")
    except jws.JwsError as exc:
        raise DocRefused(exc.code, str(exc)) from None
    if not isinstance(fields, dict) or fields.get("o2o") != FORMAT_JWS:
        raise DocRefused("malformed", f'the JWS payload is not a document ("o2o": '
                                      f'"{FORMAT_JWS}")')
    return fields, kid


def _trusted(keys: Mapping[str, Ed25519PublicKey], kid: str) -> Ed25519PublicKey:
    key = keys.get(kid)
    if key is None:
        raise DocRefused("unknown-key", f"signed with key {kid[:40]!r}, which is not trusted "
                                        "here")
    return key


def verify(raw: bytes, keys: Mapping[str, Ed25519PublicKey], store: str, device: str,
           now: float, applied: Mapping[tuple[str, str], int]) -> Doc:
    """The document in `raw` (either envelope) if it may be applied here and now, else
    DocRefused.

    `keys`: trusted keys by key id; `applied`: the version applied last per (kind, scope).
    """
    if len(raw) > MAX_ENVELOPE:
        raise DocRefused("oversized", f"{len(raw)} bytes, at most {MAX_ENVELOPE}")
    doc, kid = _envelope(raw, keys)
    kind = _field(doc, "kind", str)
    if kind not in KINDS:
        raise DocRefused("malformed", f"unknown kind {kind[:40]!r}")
    version = _field(doc, "version", int)
    if not 0 <= version <= MAX_VERSION:
        raise DocRefused("malformed", f"version must be 0 to {MAX_VERSION}")
    d = Doc(kind, _field(doc, "store", str), _field(doc, "device", str), version,
            _time(doc, "issued"), _time(doc, "expires"), doc.get("body"), kid)
    if d.store != store or d.device not in ("all", device):
        raise DocRefused("not-for-us", f"for {d.store[:64]}/{d.device[:64]}, this is "
                                       f"{store}/{device}")
    if d.issued > now + CLOCK_SKEW_S:
        raise DocRefused("not-yet-valid", f"issued {d.issued - now:.0f} s in the future")
    if d.expires <= now:
        raise DocRefused("expired", f"expired {now - d.expires:.0f} s ago")
    last = applied.get((d.kind, d.scope))
    if last is not None and d.version <= last:
        reason = "replayed" if d.version == last else "older-version"
        raise DocRefused(reason, f"version {d.version}, version {last} is applied")
    return d


def rotated_keys(doc: Doc) -> dict[str, Ed25519PublicKey]:
    """The keys a verified "keys" document trusts from now on."""
    body = doc.body
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list) or not body["keys"]:
        raise DocRefused("malformed", 'a keys document needs {"keys": ["<public key>", ...]}')
    out = {}
    for text in body["keys"]:
        try:
            k = parse_public_key(str(text))
        except ValueError as exc:
            raise DocRefused("malformed", str(exc)) from None
        out[key_id(k)] = k
    return out
