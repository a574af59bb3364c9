"""Product barcodes: EAN-13, UPC-A and EAN-8 symbols and GS1 Digital Link URIs, read as the
GTIN they carry. Pure functions over text; a code is untrusted input and is checked before
any of it is believed (digits only, the length its symbology has, the check digit).

Every GTIN is normalised to 14 digits (GTIN-14, zeros in front), the form a catalog keys
products by: the EAN-13 4006381333931, the UPC-A 036000291452 and the Digital Link
https://id.gs1.org/01/04006381333931 all name one product each, whatever printed them.

GS1 Digital Link (URI syntax, GS1 Digital Link standard 1.x): any http(s) host, an optional
path prefix, then the primary key `/01/{GTIN}` and its key qualifiers in their order
`/22/{consumer product variant}`, `/10/{batch or lot}`, `/21/{serial}`; data attributes as
numeric application identifiers in the query (`?17=201231&3103=000195`), other query
parameters (linkType, ...) ignored. The older convenience names (`/gtin/`, `/cpv/`, `/lot/`,
`/ser/`) are read too. The link is never opened: only the product it names is looked up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, unquote, urlsplit

from drivers.errors import DriverError, DriverReason

# zxing-cpp's names of the retail symbologies and the digits each holds
LENGTHS: Final = {"EAN13": 13, "UPCA": 12, "EAN8": 8}
DIGITAL_LINK: Final = "DigitalLink"
MAX_URI: Final = 1024  # GS1's resolvers take far less; a longer text is no product's code
MAX_ATTRIBUTES: Final = 16  # data attributes kept from a query; the rest are dropped
_DIGITS = re.compile(r"[0-9]+")
# GS1 AI encodable character set 82 (GS1 General Specifications 7.11, figure 7.11-1)
_CSET82 = re.compile(r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]+")
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62})(?:\.[a-z0-9](?:[a-z0-9-]{0,62}))*")
_ALIASES: Final = {
    "01": "01",
    "gtin": "01",
    "22": "22",
    "cpv": "22",
    "10": "10",
    "lot": "10",
    "21": "21",
    "ser": "21",
}
_QUALIFIERS: Final = ("22", "10", "21")  # after the GTIN, in this order, each at most once
_QUALIFIER_MAX: Final = {"22": 20, "10": 20, "21": 20}  # their values' longest form
_AI_KEY = re.compile(r"[0-9]{2,4}")
_AI_VALUE_MAX: Final = 90  # the longest value any application identifier takes


class GtinError(DriverError):
    """Why a product code is refused; `code` is short and machine-readable: gtin-not-digits,
    gtin-bad-length, gtin-bad-check-digit, gs1-malformed, gs1-bad-value."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(DriverReason.BAD_GTIN, message)
        self.code = code


@dataclass(frozen=True)
class ProductCode:
    gtin: str  # 14 digits
    symbology: str  # EAN13, UPCA, EAN8 or DigitalLink
    host: str = ""  # a Digital Link's host
    variant: str = ""  # AI 22
    lot: str = ""  # AI 10
    serial: str = ""  # AI 21
    attributes: dict[str, str] = field(default_factory=dict)  # the query's AIs

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"gtin": self.gtin, "symbology": self.symbology}
        for key in ("host", "variant", "lot", "serial"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.attributes:
            out["attributes"] = dict(self.attributes)
        return out


def check_digit(body: str) -> str:
    """The GS1 check digit of `body` (the digits before it): weights 3 and 1 alternating from
    the right, the digit that makes the sum a multiple of ten."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str(-total % 10)


def gtin14(digits: str, lengths: tuple[int, ...] = (8, 12, 13, 14)) -> str:
    """`digits` as a GTIN-14, its check digit verified; raises GtinError."""
    if not digits.isascii() or not _DIGITS.fullmatch(digits):
        raise GtinError("gtin-not-digits", "a GTIN is digits only")
    if len(digits) not in lengths:
        raise GtinError(
            "gtin-bad-length",
            f"a GTIN of {len(digits)} digits: it has " + ", ".join(map(str, lengths)),
        )
    if check_digit(digits[:-1]) != digits[-1]:
        raise GtinError(
            "gtin-bad-check-digit",
            "the GTIN's check digit is wrong: the code is misread or made up",
        )
    return digits.rjust(14, "0")


def from_barcode(text: str, symbology: str) -> ProductCode:
    """The product of an EAN-13, UPC-A or EAN-8 symbol's digits; raises GtinError."""
    length = LENGTHS.get(symbology)
    if length is None:
        raise GtinError("gtin-bad-length", f"{symbology!r} is not a retail barcode")
    return ProductCode(gtin14(text[:64], (length,)), symbology)


def looks_like_digital_link(text: str) -> bool:
    """An http(s) URI naming a GTIN in its path: what parse_digital_link is for."""
    head = text[:8].lower()
    if not (head.startswith("https://") or head.startswith("http://")):
        return False
    try:
        path = urlsplit(text[: MAX_URI + 1]).path
    except ValueError:  # "http://[": parse_digital_link has nothing to read either
        return False
    return "/01/" in path or "/gtin/" in path


def _value(value: str, limit: int, what: str) -> str:
    if not value or len(value) > limit or not _CSET82.fullmatch(value):
        raise GtinError(
            "gs1-bad-value",
            f"the Digital Link's {what} is not a GS1 value (1 to {limit} of GS1's characters)",
        )
    return value


def parse_digital_link(uri: str) -> ProductCode:
    """The product a GS1 Digital Link URI names; raises GtinError (gs1-malformed,
    gs1-bad-value, or the GTIN's own reason)."""
    if len(uri) > MAX_URI:
        raise GtinError("gs1-malformed", f"a Digital Link longer than {MAX_URI} characters")
    if not uri.isascii() or any(ch.isspace() or ord(ch) < 0x20 or ch in "\\\x7f" for ch in uri):
        raise GtinError("gs1-malformed", "a Digital Link is ASCII without spaces")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - a port that is no number raises here
    except ValueError:
        raise GtinError("gs1-malformed", "the Digital Link is no URI") from None
    if parts.scheme.lower() not in ("http", "https") or "@" in parts.netloc or parts.fragment:
        raise GtinError(
            "gs1-malformed", "a Digital Link is http(s)://host/path, without user or fragment"
        )
    host = (parts.hostname or "").rstrip(".")
    if not _HOST.fullmatch(host) or len(host) > 253:
        raise GtinError("gs1-malformed", "the Digital Link's host is no domain name")
    segments = parts.path.split("/")
    starts = [i for i, s in enumerate(segments) if _ALIASES.get(s) == "01"]
    if not starts:
        raise GtinError("gs1-malformed", "the Digital Link names no GTIN (/01/...)")
    rest = segments[starts[-1] :]  # a prefix before the primary key is the resolver's
    if len(rest) < 2 or len(rest) % 2:
        raise GtinError("gs1-malformed", "each identifier in a Digital Link's path has a value")
    try:
        gtin = gtin14(unquote(rest[1], errors="strict"))
        found: dict[str, str] = {}
        order = 0
        for key, raw in zip(rest[2::2], rest[3::2], strict=True):
            ai = _ALIASES.get(key)
            if ai not in _QUALIFIERS or _QUALIFIERS.index(ai) < order or ai in found:
                raise GtinError(
                    "gs1-malformed",
                    "a GTIN's qualifiers are /22/, /10/, /21/, in that order, each once",
                )
            order = _QUALIFIERS.index(ai)
            found[ai] = _value(unquote(raw, errors="strict"), _QUALIFIER_MAX[ai], f"AI {ai}")
        attributes: dict[str, str] = {}
        for key, raw in parse_qsl(parts.query, keep_blank_values=True, errors="strict"):
            if not _AI_KEY.fullmatch(key):
                continue  # linkType, context, ...: for the resolver, not the product
            if key in ("01", *_QUALIFIERS):
                raise GtinError("gs1-malformed", f"AI {key} belongs in the path, not the query")
            if len(attributes) < MAX_ATTRIBUTES:
                attributes[key] = _value(raw, _AI_VALUE_MAX, f"AI {key}")
    except UnicodeDecodeError:
        raise GtinError("gs1-bad-value", "the Digital Link's escapes are not UTF-8") from None
    return ProductCode(
        gtin,
        DIGITAL_LINK,
        host=host,
        variant=found.get("22", ""),
        lot=found.get("10", ""),
        serial=found.get("21", ""),
        attributes=attributes,
    )
