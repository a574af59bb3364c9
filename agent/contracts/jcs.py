"""JSON Canonicalization Scheme (RFC 8785): the signed bytes a signer in any language can make.

Upstream services sign downstream documents in whatever language they are written in. The
agent's own canonical form is Python's sorted, compact `json.dumps`; JavaScript, Go or Java
signers following RFC 8785 differ from it in two places only: object keys sorted by UTF-16 code
units (not code points) and numbers written the way ECMAScript writes them ("1e-7", "0.00001",
"1e+30"). Pure: bytes out of a parsed document, no I/O.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any, Final

from agent.errors import AgentError, Reason

# Integers up to 2**53 are exact in every JSON implementation; beyond, JavaScript (and RFC
# 8785, which follows it) only knows the nearest double, so that is what its signer wrote.
_SAFE_INT: Final = 2**53
# strings: the same escapes as ECMAScript's JSON.stringify (short forms, \u00xx for other
# control characters, everything else as UTF-8)
_STRING: Final = json.JSONEncoder(ensure_ascii=False).encode


def canonicalize(value: Any) -> bytes:
    """`value` (as `json.loads` returns it) in RFC 8785 form, UTF-8."""
    out: list[str] = []
    _write(value, out)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: RFC 8785 has no form for it
        raise AgentError(Reason.INVALID_EVENT, "a string holds a lone UTF-16 surrogate") \
            from None


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_STRING(value))
    elif isinstance(value, int):
        out.append(str(value) if -_SAFE_INT <= value <= _SAFE_INT else es_number(float(value)))
    elif isinstance(value, float):
        out.append(es_number(value))
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value, key=_utf16_key)):
            if i:
                out.append(",")
            out.append(_STRING(key))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    else:
        raise AgentError(Reason.INVALID_EVENT, f"{type(value).__name__} is not JSON")


def es_number(x: float) -> str:
    """A double as ECMAScript's Number::toString writes it (RFC 8785 section 3.2.2.3)."""
    if not math.isfinite(x):
        raise AgentError(Reason.INVALID_EVENT, "NaN and Infinity are not JSON")
    if x == 0:
        return "0"  # -0 too
    sign = "-" if x < 0 else ""
    # repr gives the shortest digits that read back as the same double, as ECMAScript asks
    _, digit_tuple, exp = Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = k + int(exp)  # the value is 0.digits * 10**n
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{sign}{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"
