"""The envelope of the signed codes a shopper shows the camera (pickup.py, offer.py): pure,
verified offline with the configured public keys.

    version 1 | key id (4) | expires (uint32 Unix seconds) | the kind's fields, each
    length-prefixed | signature (64) over the kind's domain + everything before it

all integers big-endian, written as the kind's prefix + base32 without padding (A-Z, 2-7:
QR's compact alphanumeric mode). The key id is the first 4 bytes of the SHA-256 of the raw
public key, so several keys can be configured while one is being rotated out. Each kind signs
under a domain of its own: one kind's signature never passes for another's.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from drivers.errors import DriverError, DriverReason

VERSION: Final = 1
HEAD: Final = struct.Struct(">B4sI")
SIGNATURE: Final = 64
MAX_BASE32: Final = 1024  # characters after the prefix: far above any code's, far below harm


@dataclass(frozen=True)
class CodeKind:
    """What sets one kind of code apart: its prefix, its signing domain and the widths of
    its fields' length prefixes (1: up to 255 bytes, 2: up to 65,535)."""

    name: str  # the refusals' prefix: "pickup" -> "pickup-expired"
    prefix: str
    domain: bytes
    widths: tuple[int, ...]

    def looks_like(self, text: str) -> bool:
        return text[:len(self.prefix)].upper() == self.prefix


class Refused(DriverError):
    """Why a code is refused: `why` is malformed, unknown-key, bad-signature or expired (the
    kind's module raises its own error with the kind's name before it)."""

    def __init__(self, why: str, message: str) -> None:
        super().__init__(DriverReason.BAD_CAPTURE, message)
        self.why = why


@dataclass(frozen=True)
class Opened:
    """A genuine, unexpired code's fields as sent (bytes: the kind checks their shape)."""

    key_id: bytes
    expires: int
    fields: tuple[bytes, ...]


def key_id(public: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).digest()[:4]


def seal(kind: CodeKind, private: Ed25519PrivateKey, expires: int,
         fields: tuple[bytes, ...]) -> str:
    """The code for these fields (ValueError when one does not fit its length prefix)."""
    if not 0 < expires < 2**32:
        raise ValueError("expires must be a Unix time in seconds before 2106")
    if len(fields) != len(kind.widths):
        raise ValueError(f"a {kind.name} code has {len(kind.widths)} fields")
    body = HEAD.pack(VERSION, key_id(private.public_key()), expires)
    for width, value in zip(kind.widths, fields, strict=True):
        if len(value) >= 256**width:
            raise ValueError(f"a field of {len(value)} bytes is too long for a {kind.name} code")
        body += len(value).to_bytes(width, "big") + value
    return kind.prefix + base64.b32encode(body + private.sign(kind.domain + body)).decode() \
        .rstrip("=")


def _split(kind: CodeKind, body: bytes) -> tuple[bytes, ...]:
    at = HEAD.size
    out = []
    for width in kind.widths:
        if at + width > len(body):
            raise Refused("malformed", "a field runs past the end of the code")
        n = int.from_bytes(body[at:at + width], "big")
        at += width
        if at + n > len(body):
            raise Refused("malformed", "a field runs past the end of the code")
        out.append(body[at:at + n])
        at += n
    if at != len(body):
        raise Refused("malformed", "unexpected bytes after the last field")
    return tuple(out)


def unseal(kind: CodeKind, text: str, keys: list[Ed25519PublicKey], now: float,
           check_fields: Callable[[tuple[bytes, ...]], object] | None = None) -> Opened:
    """The fields of a genuine code of this kind, signed by one of `keys`, not expired at
    `now`; Refused otherwise, never another exception whatever the text. The fields are
    split (and their shape may be checked by the caller) before the signature is: a
    malformed code is told as such, not as a forgery."""
    if not kind.looks_like(text):
        raise Refused("malformed", f"a {kind.name} code starts with {kind.prefix}")
    b32 = text[len(kind.prefix):].strip().upper()
    if len(b32) > MAX_BASE32 or not b32.isascii():
        raise Refused("malformed", "not base32 after the prefix")
    try:
        raw = base64.b32decode(b32 + "=" * (-len(b32) % 8))
    except ValueError:
        raise Refused("malformed", "not base32 after the prefix") from None
    if len(raw) < HEAD.size + sum(kind.widths) + SIGNATURE:
        raise Refused("malformed", f"too short to be a {kind.name} code")
    body, signature = raw[:-SIGNATURE], raw[-SIGNATURE:]
    version, kid, expires = HEAD.unpack_from(body)
    if version != VERSION:
        raise Refused("malformed", f"unknown {kind.name} code version {version}")
    fields = _split(kind, body)
    if check_fields is not None:
        check_fields(fields)
    key = next((k for k in keys if key_id(k) == kid), None)
    if key is None:
        raise Refused("unknown-key", f"signed with key {kid.hex()}, not configured")
    try:
        key.verify(signature, kind.domain + body)
    except InvalidSignature:
        raise Refused("bad-signature", "the signature does not match") from None
    if now >= expires:
        raise Refused("expired", f"the {kind.name} code has expired")
    return Opened(kid, expires, fields)
