"""What a store's till (POS) sends the agent, checked field by field.

Requests (the body of POST /v1/pos/sale and /v1/pos/refund, or the `request` of the bus op
"pos" with its `action`):

    {"receipt": "R-0042",             the till's receipt id: 1-64 of A-Z a-z 0-9 _ . : / -
     "total": 1250,                   integer minor units (cents): 0 to 100,000,000
     "currency": "EUR",               ISO 4217, three capital letters
     "lines": [{"sku": "COF-1", "gtin": "4006381333931", "qty": 2, "amount": 900}],
                                      1-200 lines; sku and/or gtin (8, 12, 13 or 14 digits
                                      with a valid check digit); qty 1-9999; amount optional
     "payment": "card",               card, cash, mobile, voucher, gift-card, other
     "loyalty": "LOY0012345678",      optional: hashed before it is stored or sent
     "offers": ["O2OF1:..."],         sales only, optional, at most 8: redeemed with it
     "original": "R-0017"}            refunds only, optional: the receipt refunded

    POST /v1/offers/check  {"code": "O2OF1:..."}                  valid here and now?
    POST /v1/offers/redeem {"code": "O2OF1:...", "receipt": "R-0042"}

A refused request names every bad field: {"ok": false, "errors": [{"field": "lines[0].qty",
"error": "a whole number from 1 to 9999"}]}. Amounts are integers so that no till's float
rounding reaches a KPI; a refund's total and amounts are positive (what was paid back).
"""

import re
from typing import Any, Final, Literal, NotRequired, TypedDict

RECEIPT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}")
SKU: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}")
CURRENCY: Final = re.compile(r"[A-Z]{3}")
LOYALTY_MAX: Final = 64
PAYMENTS: Final = ("card", "cash", "mobile", "voucher", "gift-card", "other")
MAX_TOTAL: Final = 100_000_000  # a million in a two-decimal currency: beyond it, a typo
MAX_LINES: Final = 200
MAX_QTY: Final = 9999
MAX_OFFERS: Final = 8
MAX_CODE: Final = 512  # an offer code's text; a real one is about 150 characters
ACTIONS: Final = ("sale", "refund", "offer-check", "offer-redeem")

Action = Literal["sale", "refund", "offer-check", "offer-redeem"]


class FieldError(TypedDict):
    field: str
    error: str


class Line(TypedDict, total=False):
    sku: str
    gtin: str
    qty: int
    amount: int


class Sale(TypedDict):
    """A checked sale or refund request (loyalty and offers still as the till sent them)."""

    receipt: str
    total: int
    currency: str
    lines: list[Line]
    payment: str
    loyalty: NotRequired[str]
    offers: NotRequired[list[str]]
    original: NotRequired[str]


def gtin_ok(digits: str) -> bool:
    """GS1 check digit of a GTIN-8, -12 (UPC-A), -13 (EAN) or -14."""
    if len(digits) not in (8, 12, 13, 14) or not (digits.isascii() and digits.isdigit()):
        return False
    body = [int(c) for c in digits[:-1]]
    weighted = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - weighted % 10) % 10 == int(digits[-1])


def _int(value: Any, lo: int, hi: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and lo <= value <= hi


def _line(i: int, line: Any, errors: list[FieldError]) -> Line:
    at = f"lines[{i}]"
    if not isinstance(line, dict):
        errors.append({"field": at, "error": 'an object like {"sku": "COF-1", "qty": 1}'})
        return {}
    out: Line = {}
    for key in sorted(set(line) - {"sku", "gtin", "qty", "amount"})[:3]:
        errors.append({"field": f"{at}.{str(key)[:40]}", "error": "not a field of a line "
                       "(sku, gtin, qty, amount)"})
    sku, gtin = line.get("sku"), line.get("gtin")
    if sku is None and gtin is None:
        errors.append({"field": at, "error": "needs a sku or a gtin (or both)"})
    if sku is not None:
        if isinstance(sku, str) and SKU.fullmatch(sku):
            out["sku"] = sku
        else:
            errors.append({"field": f"{at}.sku", "error": "1-64 letters, digits or _ . : / -"})
    if gtin is not None:
        if isinstance(gtin, str) and gtin_ok(gtin):
            out["gtin"] = gtin
        else:
            errors.append({"field": f"{at}.gtin", "error": "8, 12, 13 or 14 digits as a "
                           "string, with a valid check digit"})
    if _int(line.get("qty"), 1, MAX_QTY):
        out["qty"] = line["qty"]
    else:
        errors.append({"field": f"{at}.qty", "error": f"a whole number from 1 to {MAX_QTY}"})
    if "amount" in line:
        if _int(line["amount"], 0, MAX_TOTAL):
            out["amount"] = line["amount"]
        else:
            errors.append({"field": f"{at}.amount", "error": "integer minor units (cents) "
                           f"from 0 to {MAX_TOTAL}"})
    return out


def offer_code_problem(code: Any) -> str | None:
    if not isinstance(code, str) or not code or len(code) > MAX_CODE or not code.isascii() \
            or not code.isprintable():
        return f"an offer code as printed (O2OF1:..., at most {MAX_CODE} characters)"
    return None


def check_sale(body: Any, refund: bool = False) -> tuple[Sale | None, list[FieldError]]:
    """The request checked: (sale, []) or (None, every bad field)."""
    errors: list[FieldError] = []
    if not isinstance(body, dict):
        return None, [{"field": "", "error": "the body must be a JSON object"}]
    # a refund pays back: offers are redeemed with sales only
    known = {"receipt", "total", "currency", "lines", "payment", "loyalty"}
    known |= {"original"} if refund else {"offers"}
    for key in sorted(set(body) - known)[:5]:
        errors.append({"field": str(key)[:40], "error": "not a field of a "
                       f"{'refund' if refund else 'sale'} ({', '.join(sorted(known))})"})
    receipt = body.get("receipt")
    if not (isinstance(receipt, str) and RECEIPT.fullmatch(receipt)):
        errors.append({"field": "receipt", "error": "the till's receipt id: 1-64 letters, "
                       "digits or _ . : / -, starting with a letter or digit"})
    if not _int(body.get("total"), 0, MAX_TOTAL):
        errors.append({"field": "total", "error": "integer minor units (1250 for 12.50) from 0 "
                       f"to {MAX_TOTAL}"})
    currency = body.get("currency")
    if not (isinstance(currency, str) and CURRENCY.fullmatch(currency)):
        errors.append({"field": "currency", "error": 'an ISO 4217 code like "EUR"'})
    if body.get("payment") not in PAYMENTS:
        errors.append({"field": "payment", "error": f"one of {', '.join(PAYMENTS)}"})
    lines = body.get("lines")
    checked: list[Line] = []
    if not isinstance(lines, list) or not 1 <= len(lines) <= MAX_LINES:
        errors.append({"field": "lines", "error": f"a list of 1 to {MAX_LINES} lines"})
    else:
        checked = [_line(i, line, errors) for i, line in enumerate(lines)]
    loyalty = body.get("loyalty")
    if loyalty is not None and not (isinstance(loyalty, str) and 0 < len(loyalty) <= LOYALTY_MAX
                                    and loyalty.isascii() and loyalty.isprintable()):
        errors.append({"field": "loyalty", "error": f"the card's code, 1-{LOYALTY_MAX} "
                       "printable ASCII characters"})
    offers = body.get("offers")
    if offers is not None:
        if not isinstance(offers, list) or len(offers) > MAX_OFFERS:
            errors.append({"field": "offers", "error": f"a list of at most {MAX_OFFERS} codes"})
        else:
            for i, code in enumerate(offers):
                problem = offer_code_problem(code)
                if problem:
                    errors.append({"field": f"offers[{i}]", "error": problem})
            if len(set(offers)) != len(offers) and not any(
                    e["field"].startswith("offers[") for e in errors):
                errors.append({"field": "offers", "error": "each code once"})
    original = body.get("original")
    if original is not None and not (isinstance(original, str) and RECEIPT.fullmatch(original)):
        errors.append({"field": "original", "error": "the refunded receipt's id"})
    if errors:
        return None, errors
    sale = Sale(receipt=body["receipt"], total=body["total"], currency=body["currency"],
                lines=checked, payment=body["payment"])
    if loyalty is not None:
        sale["loyalty"] = loyalty
    if offers:
        sale["offers"] = list(offers)
    if original is not None:
        sale["original"] = original
    return sale, errors


def check_offer_request(body: Any, redeem: bool) -> tuple[dict[str, str] | None,
                                                          list[FieldError]]:
    """{"code"} (check) or {"code", "receipt"} (redeem)."""
    if not isinstance(body, dict):
        return None, [{"field": "", "error": "the body must be a JSON object"}]
    known = {"code", "receipt"} if redeem else {"code"}
    errors: list[FieldError] = [
        {"field": str(k)[:40], "error": f"not a field here ({', '.join(sorted(known))})"}
        for k in sorted(set(body) - known)[:5]]
    problem = offer_code_problem(body.get("code"))
    if problem:
        errors.append({"field": "code", "error": problem})
    if redeem and not (isinstance(body.get("receipt"), str)
                       and RECEIPT.fullmatch(body["receipt"])):
        errors.append({"field": "receipt", "error": "the receipt the offer is redeemed on"})
    if errors:
        return None, errors
    return {k: body[k] for k in known}, []
