from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from agent.envelope import make_pending, render
from agent.outbox.store import Row
from agent.uplink.batching import (
    GROW_AFTER,
    GROW_AFTER_MAX,
    MIN_BATCH_BYTES,
    BatchSizer,
    build_batches,
    split_batch,
)


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


# --- BatchSizer: lowered on a refusal, grown back after successes -------------------------

def test_sizer_refusals_of_one_size_lower_it_once() -> None:
    s = BatchSizer(500, 128 * 1024)
    for _ in range(16):  # a whole window of 500-event messages refused
        s.refused(500, 100_000)
    assert (s.events, s.bytes) == (250, 50_000)
    assert s.lowered == 1


def test_sizer_grows_back_to_the_ceiling_after_a_flaky_spell() -> None:
    s = BatchSizer(500, 128 * 1024)
    n, size = 500, 128 * 1024
    while n > 3:  # a flaky broker refuses every size down to 3 events
        s.refused(n, size)
        n, size = s.events, s.bytes
    assert s.events == 3
    sent = 0
    while s.events < 500 and sent < 10_000:
        s.succeeded()
        sent += 1
    assert (s.events, s.bytes) == (500, 128 * 1024)
    assert sent <= 8 * GROW_AFTER  # 3 -> 500 in eight doublings


def test_sizer_tries_a_refused_size_ever_more_rarely() -> None:
    s = BatchSizer(500, 1 << 20)
    waits, streak = [], 0  # messages sent between two refusals
    for _ in range(5000):  # a broker that takes at most 300 events per message
        if s.events > 300:
            s.refused(s.events, s.bytes)
            waits.append(streak)
            streak = 0
        else:
            s.succeeded(s.events, s.bytes)
            streak += 1
    assert waits[1:] == sorted(waits[1:]) and waits[-1] == GROW_AFTER_MAX
    assert len(waits) <= 5000 // GROW_AFTER_MAX + 8  # a refusal now and then, not a storm


def test_sizer_after_a_long_flaky_spell_grows_back_at_the_normal_pace() -> None:
    s = BatchSizer(500, 1 << 20)
    for _ in range(1000):  # a broker that takes at most 3 events per message, for a while
        if s.events > 3:
            s.refused(s.events, s.bytes)
        else:
            s.succeeded(s.events, s.bytes)
    assert s.events == 3 and s.grow_after == GROW_AFTER_MAX
    sent = 0
    while s.events < 500:  # healthy again
        s.succeeded(s.events, s.bytes)
        sent += 1
    assert sent <= GROW_AFTER_MAX + 8 * GROW_AFTER


def test_sizer_broker_limit_holds_per_connection() -> None:
    s = BatchSizer(500, 128 * 1024)
    s.set_broker_limit(20_000)
    assert s.bytes == 20_000
    s.set_broker_limit(None)  # the next broker announces nothing: the small limit is gone
    assert s.ceiling_bytes == 128 * 1024
    for _ in range(10 * GROW_AFTER):
        s.succeeded()
    assert s.bytes == 128 * 1024


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 1000), st.integers(1, 1 << 20)),
                max_size=200))
def test_sizer_stays_within_bounds(steps: list[tuple[bool, int, int]]) -> None:
    s = BatchSizer(500, 128 * 1024)
    for ok, n, size in steps:
        if ok:
            s.succeeded()
        else:
            s.refused(n, size)
        assert 1 <= s.events <= 500
        assert MIN_BATCH_BYTES <= s.bytes <= 128 * 1024
        assert GROW_AFTER <= s.grow_after <= GROW_AFTER_MAX


def test_sizer_honours_a_broker_limit_under_min_batch_bytes() -> None:
    # a broker that takes 600-byte packets: a 1 KiB floor would send what it never takes
    s = BatchSizer(500, 128 * 1024)
    s.set_broker_limit(500)
    assert s.bytes == 500 and not s.fits_broker(501) and s.fits_broker(500)
    s.refused(4, 480)  # halved, down to what the broker allows, never back over it
    assert s.bytes == 500
    for _ in range(10 * GROW_AFTER):
        s.succeeded()
    assert s.bytes == 500
    s.set_broker_limit(None)
    assert s.fits_broker(10**6)


@given(st.integers(1, 1 << 20), st.lists(st.integers(0, 3000), min_size=1, max_size=40),
       st.lists(st.tuples(st.booleans(), st.integers(1, 100), st.integers(1, 1 << 20)),
                max_size=30))
def test_batches_fit_any_broker_limit(limit: int, pads: list[int],
                                      steps: list[tuple[bool, int, int]]) -> None:
    # whatever the broker announces and whatever refusals came before, a message of several
    # events is never over its limit; only a single event can be, and the drain drops it
    s = BatchSizer(500, 128 * 1024)
    s.set_broker_limit(limit)
    for ok, n, size in steps:
        if ok:
            s.succeeded()
        else:
            s.refused(n, size)
    rs = [Row(i, 5, 1.0, "B", render(make_pending("o2o.t.e", {"p": "x" * pad}, 1.0, 5),
                                     '"o2o-edge://s/d"', "B", i))
          for i, pad in enumerate(pads, 1)]
    for b in build_batches(rs, max_events=s.events, max_bytes=s.bytes):
        assert len(b.rowids) == 1 or s.fits_broker(len(b.payload))
