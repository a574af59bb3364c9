"""Signed pickup codes: what a shopper's order confirmation shows, verified offline.

In the signed-code envelope (signed.py) under the domain b"o2o-pickup", prefix "O2OP1:":

    len (1) + order id | len (1) + store id        (an empty store id means any store)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from drivers.errors import DriverError, DriverReason
from drivers.qr import signed
from drivers.qr.signed import key_id as key_id

KIND = signed.CodeKind("pickup", "O2OP1:", b"o2o-pickup", (1, 1))
PREFIX = KIND.prefix
VERSION = signed.VERSION
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


def make_code(private: Ed25519PrivateKey, order: str, expires: int, store: str = "") -> str:
    for name, value, allow_empty in (("order", order, False), ("store", store, True)):
        if not (allow_empty and not value) and not _ID.fullmatch(value):
            raise ValueError(f"{name} id must be 1-32 letters, digits or '-', got {value!r}")
    return signed.seal(KIND, private, expires, (order.encode(), store.encode()))


def looks_like_pickup(text: str) -> bool:
    return KIND.looks_like(text)


def _check(fields: tuple[bytes, ...]) -> None:
    try:
        order, store = (f.decode("ascii") for f in fields)
    except UnicodeDecodeError:
        raise signed.Refused("malformed", "order or store id is not ASCII") from None
    if not _ID.fullmatch(order) or (store and not _ID.fullmatch(store)):
        raise signed.Refused("malformed", "order or store id has characters not allowed")


def verify_code(text: str, keys: list[Ed25519PublicKey], now: float, store: str = "") -> Pickup:
    """The order a genuine, unexpired code for this store names; PickupError otherwise."""
    try:
        opened = signed.unseal(KIND, text, keys, now, _check)
    except signed.Refused as exc:
        raise PickupError(f"pickup-{exc.why}", str(exc)) from None
    order, code_store = (f.decode("ascii") for f in opened.fields)
    if code_store and store and code_store != store:
        raise PickupError("pickup-other-store", f"the order is for store {code_store}")
    return Pickup(order, code_store, opened.expires, opened.key_id.hex())
