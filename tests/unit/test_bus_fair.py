"""The bus's fairness parts as pure logic: the byte budget, and a big line parsed in steps
giving exactly what one parse gives (or the same refusal)."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.bus.edge import Refused, parse, parse_in_steps
from agent.bus.fair import ByteBudget


def test_budget_waits_in_turn_and_a_timed_out_waiter_takes_nothing() -> None:
    async def main() -> None:
        b = ByteBudget(100)
        assert await b.acquire(80, 1)
        assert not await b.acquire(50, 0.05)  # did not fit in time: refused, took nothing
        assert b.used == 80
        later = asyncio.ensure_future(b.acquire(50, 5))
        small = asyncio.ensure_future(b.acquire(10, 5))  # behind it: first come, first served
        await asyncio.sleep(0)
        assert not later.done() and not small.done()
        b.release(80)
        assert await later and await small
        assert b.used == 60 and b.peak == 80
        b.release(50)
        b.release(10)
        assert await b.acquire(10**9, 1) and b.used == 100  # more than all: takes all

    asyncio.run(main())


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3),
                                                                          c, max_size=3),
                     max_leaves=10)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["op", "req", "events", "x"]), _json, max_size=4),
       st.sampled_from(["", " ", "\n", " \t"]))
def test_parse_in_steps_equals_one_parse(msg: dict[str, object], pad: str) -> None:
    raw = json.dumps(msg, separators=(", ", ": ") if pad else (",", ":")).encode()
    raw = pad.encode() + raw + pad.encode() + b"\n"
    assert parse_in_steps(raw) == parse(raw)


@pytest.mark.parametrize("bad", ['{"a":1,}', '{"events":[1,]}', '[1]', '{"a":1} x',
                                 '{"a":NaN}', '{"events":[1 2]}', '{"events":[', '{a:1}'])
def test_parse_in_steps_refuses_what_parse_refuses(bad: str) -> None:
    for f in (parse, parse_in_steps):
        with pytest.raises(Refused):
            f(bad.encode())
