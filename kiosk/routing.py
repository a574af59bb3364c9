"""Which flow a hardware event starts at the kiosk (pure: event + bundle -> action).

- an NFC tap on a registered loyalty card: a loyalty check-in with the card;
- an NFC tag or a QR code that a content page opens on (by the tag's UID, or the link it
  carries): that page, with how it was opened as the hand-off's medium;
- a verified pickup QR code: a pickup check-in for its order; a loyalty QR code: a loyalty
  check-in; a pickup code that is expired, for another store or forged: its result at once;
- a signed offer code: whether it is good, with its words, or why not (the agent's verdict);
- a product's barcode (EAN-13, UPC-A, EAN-8, a GS1 Digital Link): its product card, by GTIN;
- a beacon zone a page opens on (presence of the opted-in app or a registered beacon).
Anything else (a rejected link, a bank card tapped by mistake) starts nothing, and so does
an event whose fields have the wrong shape: any bus client can send one, and a kiosk that
raised on it would go dark for every shopper.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from agent.contracts import events as ev
from kiosk.content import Bundle

Action = tuple[str, dict[str, Any]]
GTIN = re.compile(r"[0-9]{14}")  # as the agent's classifier writes it (drivers/qr/gtin.py)
PICKUP_REJECTIONS = {"pickup-expired": "expired", "pickup-other-store": "other-store",
                     "pickup-bad-signature": "invalid", "pickup-unknown-key": "invalid",
                     "pickup-malformed": "invalid"}
OFFER_REJECTIONS = {"offer-used": "offer.used", "offer-expired": "offer.expired",
                    "offer-other-store": "offer.other-store",
                    "offer-bad-signature": "offer.invalid", "offer-unknown-key": "offer.invalid",
                    "offer-malformed": "offer.invalid"}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _page(bundle: Bundle, how: str, key: str, medium: str) -> Action | None:
    page = bundle.page_for(how, key)
    return ("page", {"page": page.id, "medium": medium}) if page else None


def link_key(host: Any, path: Any) -> str:
    return f"{_str(host).lower()}{_str(path) or '/'}"


def _nfc(data: dict[str, Any], bundle: Bundle) -> Action | None:
    tag = _dict(data.get("tag"))
    if tag.get("kind") == "loyalty":
        return ("checkin", {"request": {"kind": "loyalty", "card": _str(tag.get("id"))},
                            "via": "nfc"})
    found = _page(bundle, "nfc", _str(tag.get("id")), "nfc")
    if found:
        return found
    records = data.get("records")
    for rec in map(_dict, records if isinstance(records, list) else []):
        if rec.get("class") in ("product", "campaign"):
            found = _page(bundle, "qr", link_key(rec.get("host"), rec.get("path")), "nfc")
            if found:
                return found
    return None


def _qr(data: dict[str, Any], bundle: Bundle) -> Action | None:
    cls = data.get("class")
    if cls == "pickup":
        return ("checkin", {"request": {"kind": "pickup", "order": _str(data.get("order"))},
                            "via": "qr"})
    if cls == "loyalty":
        return ("checkin", {"request": {"kind": "loyalty", "card": _str(data.get("card"))},
                            "via": "qr"})
    if cls in ("product", "campaign"):
        return _page(bundle, "qr", link_key(data.get("host"), data.get("path")), "qr")
    if cls == "rejected" and _str(data.get("reason")) in PICKUP_REJECTIONS:
        return ("result", {"outcome": PICKUP_REJECTIONS[data["reason"]]})
    if cls == "offer":
        return ("offer", {"outcome": "offer.valid", "offer": _str(data.get("offer"))})
    if cls == "gtin" and GTIN.fullmatch(_str(data.get("gtin"))):
        return ("product", {"gtin": data["gtin"]})
    if cls == "rejected" and _str(data.get("reason")) in OFFER_REJECTIONS:
        return ("offer", {"outcome": OFFER_REJECTIONS[data["reason"]],
                          "offer": _str(data.get("offer"))})
    return None


def route_event(event: Mapping[str, Any], bundle: Bundle) -> Action | None:
    data = event.get("data")
    if not isinstance(data, dict):
        return None
    kind = event.get("type")
    if kind == ev.NFC_TAP:
        return _nfc(data, bundle)
    if kind == ev.QR_SCAN:
        return _qr(data, bundle)
    if kind == ev.BLE_PRESENCE and data.get("action") in ("enter", "zone"):
        return _page(bundle, "zone", f"{data.get('id')}:{data.get('zone')}", "beacon")
    return None
