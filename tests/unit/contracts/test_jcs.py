"""RFC 8785 canonical form: the spec's own examples, and ECMAScript's number text checked
against Node's JSON.stringify where Node is installed."""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.contracts.jcs import canonicalize, es_number
from agent.errors import AgentError

# RFC 8785 appendix B: IEEE 754 bit patterns and the text every JCS implementation writes
NUMBERS = {
    "0000000000000000": "0",
    "8000000000000000": "0",
    "0000000000000001": "5e-324",
    "8000000000000001": "-5e-324",
    "7fefffffffffffff": "1.7976931348623157e+308",
    "ffefffffffffffff": "-1.7976931348623157e+308",
    "4340000000000000": "9007199254740992",
    "c340000000000000": "-9007199254740992",
    "4430000000000000": "295147905179352830000",
    "44b52d02c7e14af5": "9.999999999999997e+22",
    "44b52d02c7e14af6": "1e+23",
    "44b52d02c7e14af7": "1.0000000000000001e+23",
    "444b1ae4d6e2ef4e": "999999999999999700000",
    "444b1ae4d6e2ef4f": "999999999999999900000",
    "444b1ae4d6e2ef50": "1e+21",
    "3eb0c6f7a0b5ed8c": "9.999999999999997e-7",
    "3eb0c6f7a0b5ed8d": "0.000001",
    "41b3de4355555553": "333333333.3333332",
    "41b3de4355555554": "333333333.33333325",
    "41b3de4355555555": "333333333.3333333",
    "41b3de4355555556": "333333333.3333334",
    "41b3de4355555557": "333333333.33333343",
    "becbf647612f3696": "-0.0000033333333333333333",
    "43143ff3c1cb0959": "1424953923781206.2",
}


@pytest.mark.parametrize(("bits", "text"), NUMBERS.items(), ids=list(NUMBERS))
def test_numbers_as_the_spec_writes_them(bits: str, text: str) -> None:
    (x,) = struct.unpack(">d", bytes.fromhex(bits))
    assert es_number(x) == text


def test_the_specs_sample_document() -> None:
    # RFC 8785 section 3.2.2, input with odd number forms and escapes
    raw = ('{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
           ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
           ' "literals": [null, true, false]}')
    assert canonicalize(json.loads(raw)) == (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}').encode()


def test_keys_sorted_by_utf16_code_units() -> None:
    # RFC 8785 section 3.2.3: the emoji (a surrogate pair, D83D) sorts before U+FB33
    doc = {"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001f600": 5, "\u0080": 6, "\u00f6": 7}
    text = canonicalize(doc).decode()
    order = [k for k in json.loads(text, object_pairs_hook=lambda p: [k for k, _ in p])]
    assert order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_big_integers_are_what_a_javascript_signer_read() -> None:
    assert canonicalize(12345678901234567890) == b"12345678901234567000"
    assert canonicalize(2**53) == b"9007199254740992"
    assert canonicalize(-(2**53) + 1) == b"-9007199254740991"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "\ud800", {"k": object()}])
def test_what_has_no_canonical_form_is_refused(bad: object) -> None:
    with pytest.raises(AgentError):
        canonicalize(bad)


NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed: apt-get install nodejs")
@settings(max_examples=1, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=300, max_size=300))
def test_numbers_match_javascript(xs: list[float]) -> None:
    # one Node process for the whole list; repr round-trips, so Node reads the same doubles
    script = "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{" \
             "for(const x of JSON.parse(s))console.log(JSON.stringify(x))})"
    out = subprocess.run([str(NODE), "-e", script], input=json.dumps(xs), text=True,
                         capture_output=True, check=True, timeout=30).stdout.split()
    assert [es_number(x) for x in xs] == out
