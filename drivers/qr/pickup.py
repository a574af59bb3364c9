"""Signed pickup codes: what a shopper's order confirmation shows, verified offline.

Format (all integers big-endian), signed with Ed25519:

    version 1 | key id (4) | expires (uint32 Unix seconds) | len + order id | len + store id
    | signature (64) over b"o2o-pickup" + everything before it

written as "O2OP1:" + base32 without padding (A-Z, 2-7: QR's compact alphanumeric mode).
The key id is the first 4 bytes of SHA-256 of the raw public key, so several keys can be
configured while one is being rotated out. An empty store id means any store.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from drivers.errors import DriverError, DriverReason

PREFIX = "O2OP1:"
VERSION = 1
_DOMAIN = b"o2o-pickup"
_HEAD = struct.Struct(">B4sI")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,31}")


class PickupError(DriverError):
    """Why a pickup code is refused; `code` is short and machine-readable (the QR
    classifier's rejection reason: pickup-malformed, pickup-expired, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(DriverReason.BAD_PICKUP, message)
        self.code = code


@dataclass(frozen=True)
class Pickup:
    order: str
    store: str
    expires: int
    key_id: str


def key_id(public: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).digest()[:4]


def make_code(private: Ed25519PrivateKey, order: str, expires: int, store: str = "") -> str:
    for name, value, allow_empty in (("order", order, False), ("store", store, True)):
        if not (allow_empty and not value) and not _ID.fullmatch(value):
            raise ValueError(f"{name} id must be 1-32 letters, digits or '-', got {value!r}")
    body = _HEAD.pack(VERSION, key_id(private.public_key()), expires) \
        + bytes([len(order)]) + order.encode() + bytes([len(store)]) + store.encode()
    signature = private.sign(_DOMAIN + body)
    return PREFIX + base64.b32encode(body + signature).decode().rstrip("=")


def looks_like_pickup(text: str) -> bool:
    return text[:len(PREFIX)].upper() == PREFIX


def verify_code(text: str, keys: list[Ed25519PublicKey], now: float, store: str = "") -> Pickup:
    """The order a genuine, unexpired code for this store names; PickupError otherwise."""
    b32 = text[len(PREFIX):].upper()
    try:
        raw = base64.b32decode(b32 + "=" * (-len(b32) % 8))
    except ValueError:
        raise PickupError("pickup-malformed", "not base32 after the prefix") from None
    if len(raw) < _HEAD.size + 2 + 64:
        raise PickupError("pickup-malformed", "too short to be a pickup code")
    body, signature = raw[:-64], raw[-64:]
    version, kid, expires = _HEAD.unpack_from(body)
    if version != VERSION:
        raise PickupError("pickup-malformed", f"unknown pickup code version {version}")
    pos = _HEAD.size
    fields = []
    for _ in range(2):
        n = body[pos] if pos < len(body) else -1
        if n < 0 or pos + 1 + n > len(body):
            raise PickupError("pickup-malformed", "a field runs past the end of the code")
        fields.append(body[pos + 1:pos + 1 + n])
        pos += 1 + n
    if pos != len(body):
        raise PickupError("pickup-malformed", "unexpected bytes after the store id")
    try:
        order, code_store = (f.decode("ascii") for f in fields)
    except UnicodeDecodeError:
        raise PickupError("pickup-malformed", "order or store id is not ASCII") from None
    if not _ID.fullmatch(order) or (code_store and not _ID.fullmatch(code_store)):
        raise PickupError("pickup-malformed", "order or store id has characters not allowed")
    key = next((k for k in keys if key_id(k) == kid), None)
    if key is None:
        raise PickupError("pickup-unknown-key", f"signed with key {kid.hex()}, not configured")
    try:
        key.verify(signature, _DOMAIN + body)
    except InvalidSignature:
        raise PickupError("pickup-bad-signature", "the signature does not match") from None
    if now >= expires:
        raise PickupError("pickup-expired", "the code has expired")
    if code_store and store and code_store != store:
        raise PickupError("pickup-other-store", f"the order is for store {code_store}")
    return Pickup(order, code_store, expires, kid.hex())
