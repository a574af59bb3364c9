from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from agent.envelope import make_pending, render
from agent.outbox.store import Row
from agent.uplink.batching import build_batches, split_batch


def rows(n: int, data: object = None, created: float = 100.0) -> list[Row]:
    out = []
    for i in range(1, n + 1):
        p = make_pending("o2o.test.ev", data if data is not None else {"i": i}, created)
        out.append(Row(i, 5, created, "B", render(p, '"o2o-edge://s/d"', "B", i)))
    return out


def test_batches_respect_event_and_byte_limits() -> None:
    rs = rows(1000)
    batches = build_batches(rs, max_events=100, max_bytes=10_000)
    assert [r for b in batches for r in b.rowids] == list(range(1, 1001))
    for b in batches:
        assert len(b.rowids) <= 100
        assert len(b.payload) <= 10_000
        decoded = json.loads(b.payload)
        assert [e["seq"] for e in decoded] == list(b.rowids)


def test_oversized_event_gets_its_own_batch() -> None:
    rs = rows(3, data={"blob": "x" * 5000})
    batches = build_batches(rs, max_events=100, max_bytes=2000)
    assert [len(b.rowids) for b in batches] == [1, 1, 1]


def test_historical_marking() -> None:
    rs = [*rows(2, created=50.0), Row(9, 5, 200.0, "B", rows(1, created=200.0)[0].body)]
    (batch,) = build_batches(rs, max_events=10, max_bytes=100_000, historical_before=100.0)
    events = json.loads(batch.payload)
    assert [e.get("historical") for e in events] == [True, True, None]


@given(st.lists(st.text(max_size=30), min_size=2, max_size=40))
def test_split_keeps_every_event_once(texts: list[str]) -> None:
    rs = rows(len(texts))
    rs = [Row(r.n, 5, 1.0, "B", render(make_pending("o2o.t.e", {"s": t, "n": [1, {"a": "]},{"}]},
                                                     1.0), '"o2o-edge://s/d"', "B", r.n))
          for r, t in zip(rs, texts, strict=True)]
    (batch,) = build_batches(rs, max_events=100, max_bytes=10**7)
    left, right = split_batch(batch)
    assert left.rowids + right.rowids == batch.rowids
    got = json.loads(left.payload) + json.loads(right.payload)
    assert got == json.loads(batch.payload)
