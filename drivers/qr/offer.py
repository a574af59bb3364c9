"""Signed offer codes: a campaign's coupon, shown at the kiosk and redeemed once at the till,
verified offline like the pickup codes (pickup.py) but under a domain of their own, so a
pickup code's signature can never pass for an offer's.

Format (integers big-endian), signed with Ed25519:

    version 1 | key id (4) | expires (uint32 Unix seconds) | len + code id | len + campaign
    | len + offer text id | len + stores (comma-separated; empty: any store)
    | signature (64) over b"o2o-offer" + everything before it

written as "O2OF1:" + base32 without padding (QR's compact alphanumeric mode). The code id
is the one thing that differs between two codes of a campaign: the one-time ledger is keyed
by it. The offer text id names the words the kiosk shows ("coffee-20" -> "20 % off coffee").
"""

from __future__ import annotations

import base64
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from drivers.errors import DriverError, DriverReason
from drivers.qr.pickup import key_id

PREFIX = "O2OF1:"
VERSION = 1
_DOMAIN = b"o2o-offer"
_HEAD = struct.Struct(">B4sI")
_SIG = 64
MAX_STORES = 16
# the fields' shapes: ASCII tokens, so a code stays short and nothing in it can be markup
CODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,31}")
CAMPAIGN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TEXT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
STORE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,31}")


class OfferError(DriverError):
    """Why an offer code is refused; `code` is short and machine-readable (offer-malformed,
    offer-unknown-key, offer-bad-signature, offer-expired, offer-other-store)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(DriverReason.BAD_OFFER, message)
        self.code = code


@dataclass(frozen=True)
class Offer:
    code_id: str
    campaign: str
    text_id: str
    stores: tuple[str, ...]  # empty: any store
    expires: int
    key_id: str


def _field(name: str, value: str, pattern: re.Pattern[str]) -> bytes:
    if not pattern.fullmatch(value):
        raise ValueError(f"{name} {value!r} has characters or a length not allowed "
                         f"(pattern {pattern.pattern})")
    return bytes([len(value)]) + value.encode("ascii")


def make_code(private: Ed25519PrivateKey, code_id: str, campaign: str, text_id: str,
              expires: int, stores: tuple[str, ...] = ()) -> str:
    if len(stores) > MAX_STORES:
        raise ValueError(f"at most {MAX_STORES} stores per code")
    for s in stores:
        _field("store id", s, STORE)
    if not 0 < expires < 2**32:
        raise ValueError("expires must be a Unix time in seconds before 2106")
    joined = ",".join(stores)
    body = (_HEAD.pack(VERSION, key_id(private.public_key()), expires)
            + _field("code id", code_id, CODE_ID) + _field("campaign", campaign, CAMPAIGN)
            + _field("offer text id", text_id, TEXT_ID)
            + (len(joined).to_bytes(2, "big") + joined.encode("ascii")))
    signature = private.sign(_DOMAIN + body)
    return PREFIX + base64.b32encode(body + signature).decode().rstrip("=")


def looks_like_offer(text: str) -> bool:
    return text[:len(PREFIX)].upper() == PREFIX


def _fields(body: bytes) -> tuple[str, str, str, tuple[str, ...]]:
    pos = _HEAD.size
    out: list[bytes] = []
    for width in (1, 1, 1, 2):
        if pos + width > len(body):
            raise OfferError("offer-malformed", "a field runs past the end of the code")
        n = int.from_bytes(body[pos:pos + width], "big")
        pos += width
        if pos + n > len(body):
            raise OfferError("offer-malformed", "a field runs past the end of the code")
        out.append(body[pos:pos + n])
        pos += n
    if pos != len(body):
        raise OfferError("offer-malformed", "unexpected bytes after the stores")
    try:
        code_id, campaign, text_id, stores = (f.decode("ascii") for f in out)
    except UnicodeDecodeError:
        raise OfferError("offer-malformed", "a field is not ASCII") from None
    listed = tuple(stores.split(",")) if stores else ()
    if not (CODE_ID.fullmatch(code_id) and CAMPAIGN.fullmatch(campaign)
            and TEXT_ID.fullmatch(text_id)) or len(listed) > MAX_STORES \
            or not all(STORE.fullmatch(s) for s in listed):
        raise OfferError("offer-malformed", "a field has characters not allowed")
    return code_id, campaign, text_id, listed


def verify_code(text: str, keys: list[Ed25519PublicKey], now: float, store: str = "") -> Offer:
    """The offer a genuine, unexpired code valid in `store` carries; OfferError otherwise.
    Pure: whether the code was used already is the ledger's question, not this one's."""
    if not looks_like_offer(text):
        raise OfferError("offer-malformed", f"an offer code starts with {PREFIX}")
    b32 = text[len(PREFIX):].strip().upper()
    if len(b32) > 1024 or not b32.isascii():
        raise OfferError("offer-malformed", "not base32 after the prefix")
    try:
        raw = base64.b32decode(b32 + "=" * (-len(b32) % 8))
    except ValueError:
        raise OfferError("offer-malformed", "not base32 after the prefix") from None
    if len(raw) < _HEAD.size + 5 + _SIG:
        raise OfferError("offer-malformed", "too short to be an offer code")
    body, signature = raw[:-_SIG], raw[-_SIG:]
    version, kid, expires = _HEAD.unpack_from(body)
    if version != VERSION:
        raise OfferError("offer-malformed", f"unknown offer code version {version}")
    code_id, campaign, text_id, stores = _fields(body)
    key = next((k for k in keys if key_id(k) == kid), None)
    if key is None:
        raise OfferError("offer-unknown-key", f"signed with key {kid.hex()}, not configured")
    try:
        key.verify(signature, _DOMAIN + body)
    except InvalidSignature:
        raise OfferError("offer-bad-signature", "the signature does not match") from None
    if now >= expires:
        raise OfferError("offer-expired", "the offer has expired")
    if stores and store and store not in stores:
        raise OfferError("offer-other-store", "the offer is not valid in this store")
    return Offer(code_id, campaign, text_id, stores, expires, kid.hex())
