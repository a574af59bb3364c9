"""What a QR code says, classified. QR content is untrusted input: it is checked before any
of it is believed, and a rejected code keeps only its reason, length and hash, never a form
that the kiosk could render as a link.

Classes: "pickup" (a signed pickup code, see pickup.py), "offer" (a signed offer code, see
offer.py: valid here and now; whether it was used is the agent's ledger's to say),
"campaign" / "product" (an https link to an allowlisted domain; UTM parameters parsed for
attribution), "loyalty" (a loyalty card code), "gtin" (a product's barcode, EAN-13, UPC-A or
EAN-8, or a GS1 Digital Link naming one, see gtin.py), "text" (anything else harmless),
"rejected" (with a reason).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from drivers.qr import gtin, offer
from drivers.qr.pickup import PickupError, looks_like_pickup, verify_code

MAX_BYTES = 2048  # a version 40 QR holds 2,953; nothing a store prints comes near this
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31}):")
# schemes that run code or reach local data when opened
_DANGEROUS = {"javascript", "vbscript", "data", "file", "blob", "about", "intent", "chrome",
              "jar", "view-source", "filesystem", "ms-settings", "content"}
# bidi overrides and isolates: text that reads differently from what it is (trojan source)
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


@dataclass(frozen=True)
class QrPolicy:
    domains: tuple[str, ...] = ()  # allowlisted link domains (subdomains included)
    product_paths: tuple[str, ...] = ("/p/", "/product/", "/products/")
    loyalty_pattern: str = r"LOY[0-9]{8,16}"
    pickup_keys: tuple[Ed25519PublicKey, ...] = ()
    offer_keys: tuple[Ed25519PublicKey, ...] = ()
    store: str = ""
    max_bytes: int = MAX_BYTES


@dataclass(frozen=True)
class Verdict:
    cls: str
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"class": self.cls, "reason": self.reason, **self.detail}


def _rejected(reason: str, raw: bytes) -> Verdict:
    return Verdict("rejected", reason, {"length": len(raw),
                                        "sha256": hashlib.sha256(raw).hexdigest()[:16]})


def _has_controls(text: str, allow_newlines: bool) -> bool:
    for ch in text:
        if ch in _BIDI:
            return True
        cat = unicodedata.category(ch)
        if cat == "Cc" and not (allow_newlines and ch in "\n\r\t"):
            return True
    return False


def _scripts(host: str) -> set[str]:
    out = set()
    for ch in host:
        if ch.isalpha():
            out.add(unicodedata.name(ch, "UNKNOWN").split(" ")[0])
    return out


def _host_problem(host: str) -> str | None:
    if not host:
        return "no-host"
    if any(label.startswith("xn--") for label in host.split(".")):
        return "punycode-host"
    if not host.isascii():
        return "mixed-script-host" if len(_scripts(host)) > 1 else "non-ascii-host"
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return "ip-address-host"
    if not re.fullmatch(r"[a-z0-9.-]+", host):
        return "bad-host"
    return None


def _allowlisted(host: str, domains: tuple[str, ...]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def _utm(query: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in UTM_KEYS and key[4:] not in out and value.isprintable():
            out[key.removeprefix("utm_")] = value[:100]
    return out


def _classify_link(text: str, raw: bytes, policy: QrPolicy) -> Verdict:
    if any(ch.isspace() for ch in text) or "\\" in text:
        return _rejected("bad-url", raw)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return _rejected("bad-url", raw)
    if parts.scheme.lower() != "https":
        return _rejected("insecure-scheme", raw)
    if "@" in parts.netloc:
        return _rejected("userinfo-in-url", raw)
    if port not in (None, 443):
        return _rejected("port-not-allowed", raw)
    host = (parts.hostname or "").rstrip(".")
    problem = _host_problem(host)
    if problem:
        return _rejected(problem, raw)
    if not _allowlisted(host, policy.domains):
        return _rejected("host-not-allowlisted", raw)
    path = parts.path or "/"
    detail: dict[str, Any] = {"host": host, "path": path[:200], "utm": _utm(parts.query)}
    for prefix in policy.product_paths:
        if path.startswith(prefix) and len(path) > len(prefix):
            product = path[len(prefix):].split("/", 1)[0]
            if re.fullmatch(r"[A-Za-z0-9._-]{1,64}", product):
                return Verdict("product", None, {**detail, "product": product})
    return Verdict("campaign", None, detail)


def classify(raw: bytes | str, policy: QrPolicy, now: float,
             text: str | None = None, kind: str = "QRCode") -> Verdict:
    """The class of one decoded QR payload. Never raises on any input.

    `raw` is what the symbol holds (its length is limited, its hash reported); `text`, when
    the decoder knows the payload is text in some character set (a Latin-1 or Shift-JIS QR
    code), is that text, and is what gets judged. Without it the bytes must be UTF-8.
    `kind` is the symbology read (zxing-cpp's name): an EAN-13, UPC-A or EAN-8 symbol holds
    a product's GTIN and nothing else."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if len(data) > policy.max_bytes:
        return _rejected("too-long", data)
    # a replacement character in the decoder's text: it could not decode it either, and the
    # bytes decide
    if text is None or "\ufffd" in text:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return _rejected("invalid-utf8", data)
    if not text.strip():
        return _rejected("empty", data)
    if kind in gtin.LENGTHS:
        try:
            return Verdict("gtin", None, gtin.from_barcode(text, kind).as_json())
        except gtin.GtinError as exc:
            return _rejected(exc.code, data)
    if looks_like_pickup(text):
        try:
            p = verify_code(text.strip(), list(policy.pickup_keys), now, policy.store)
        except PickupError as exc:
            return _rejected(exc.code, data)
        return Verdict("pickup", None, {"order": p.order, "expires": p.expires,
                                        "key_id": p.key_id})
    if offer.looks_like_offer(text):
        try:
            o = offer.verify_code(text.strip(), list(policy.offer_keys), now, policy.store)
        except offer.OfferError as exc:
            return _rejected(exc.code, data)
        return Verdict("offer", None, {"code": o.code_id, "campaign": o.campaign,
                                       "offer": o.text_id, "expires": o.expires})
    m = _SCHEME.match(text)
    scheme = m.group(1).lower() if m else ""
    if scheme in _DANGEROUS:
        return _rejected("scheme-not-allowed", data)
    is_link = m is not None and (scheme in ("http", "https")
                                 or text[m.end():m.end() + 2] == "//")
    if is_link:
        if _has_controls(text, allow_newlines=False):
            return _rejected("control-characters", data)
        if scheme not in ("http", "https"):
            return _rejected("scheme-not-allowed", data)
        if gtin.looks_like_digital_link(text):  # never opened: the product is looked up
            try:
                return Verdict("gtin", None, gtin.parse_digital_link(text).as_json())
            except gtin.GtinError as exc:
                return _rejected(exc.code, data)
        return _classify_link(text, data, policy)
    if _has_controls(text, allow_newlines=True):
        return _rejected("control-characters", data)
    if re.fullmatch(policy.loyalty_pattern, text.strip()):
        return Verdict("loyalty", None, {"card": text.strip()})
    return Verdict("text", None, {"length": len(text)})
