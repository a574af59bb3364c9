"""Signed offer codes: a campaign's coupon, shown at the kiosk and redeemed once at the till,
verified offline like the pickup codes (pickup.py) but under a domain of their own, so a
pickup code's signature can never pass for an offer's.

In the signed-code envelope (signed.py) under the domain b"o2o-offer", prefix "O2OF1:":

    len (1) + code id | len (1) + campaign | len (1) + offer text id
    | len (2) + stores (comma-separated; empty: any store)

The code id
is the one thing that differs between two codes of a campaign: the one-time ledger is keyed
by it. The offer text id names the words the kiosk shows ("coffee-20" -> "20 % off coffee").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from drivers.errors import DriverError, DriverReason
from drivers.qr import signed

KIND = signed.CodeKind("offer", "O2OF1:", b"o2o-offer", (1, 1, 1, 2))
PREFIX = KIND.prefix
VERSION = signed.VERSION
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
    return value.encode("ascii")


def make_code(private: Ed25519PrivateKey, code_id: str, campaign: str, text_id: str,
              expires: int, stores: tuple[str, ...] = ()) -> str:
    if len(stores) > MAX_STORES:
        raise ValueError(f"at most {MAX_STORES} stores per code")
    for s in stores:
        _field("store id", s, STORE)
    return signed.seal(KIND, private, expires, (
        _field("code id", code_id, CODE_ID), _field("campaign", campaign, CAMPAIGN),
        _field("offer text id", text_id, TEXT_ID), ",".join(stores).encode("ascii")))


def looks_like_offer(text: str) -> bool:
    return KIND.looks_like(text)


def _decode(fields: tuple[bytes, ...]) -> tuple[str, str, str, tuple[str, ...]]:
    try:
        code_id, campaign, text_id, stores = (f.decode("ascii") for f in fields)
    except UnicodeDecodeError:
        raise signed.Refused("malformed", "a field is not ASCII") from None
    listed = tuple(stores.split(",")) if stores else ()
    if not (CODE_ID.fullmatch(code_id) and CAMPAIGN.fullmatch(campaign)
            and TEXT_ID.fullmatch(text_id)) or len(listed) > MAX_STORES \
            or not all(STORE.fullmatch(s) for s in listed):
        raise signed.Refused("malformed", "a field has characters not allowed")
    return code_id, campaign, text_id, listed


def verify_code(text: str, keys: list[Ed25519PublicKey], now: float, store: str = "") -> Offer:
    """The offer a genuine, unexpired code valid in `store` carries; OfferError otherwise.
    Pure: whether the code was used already is the ledger's question, not this one's."""
    try:
        opened = signed.unseal(KIND, text, keys, now, _decode)
    except signed.Refused as exc:
        raise OfferError(f"offer-{exc.why}", str(exc)) from None
    code_id, campaign, text_id, stores = _decode(opened.fields)
    if stores and store and store not in stores:
        raise OfferError("offer-other-store", "the offer is not valid in this store")
    return Offer(code_id, campaign, text_id, stores, opened.expires, opened.key_id.hex())
