"""The QR source's decode times: a Prometheus histogram in seconds kept as bucket counts, so
its memory does not grow with the frames decoded."""

from __future__ import annotations

import sys

from agent.qr_source import DECODE_BUCKETS_S, DecodeTimes


def test_buckets_are_cumulative_with_inf_equal_to_the_count() -> None:
    times = DecodeTimes()
    for seconds in (0.0004, 0.001, 0.003, 0.02, 0.02, 0.7, 3.0):
        times.observe(seconds)
    snap = times.snapshot()
    buckets = dict(snap["buckets"])
    assert list(buckets) == [repr(b) for b in DECODE_BUCKETS_S] + ["+Inf"]
    assert buckets["0.001"] == 2  # an upper bound is inclusive, as Prometheus' le says
    assert buckets["0.005"] == 3 and buckets["0.025"] == 5 and buckets["1.0"] == 6
    assert buckets["+Inf"] == snap["count"] == 7
    assert abs(snap["sum"] - 3.7444) < 1e-9
    counts = list(buckets.values())
    assert counts == sorted(counts)


def test_memory_stays_the_same_however_many_frames() -> None:
    times = DecodeTimes()
    before = sys.getsizeof(times._counts)
    for i in range(100_000):
        times.observe((i % 1000) / 1000)
    assert sys.getsizeof(times._counts) == before
    assert times.snapshot()["count"] == 100_000
