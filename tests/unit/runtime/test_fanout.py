"""The commit fan-out: each consumer on its own, failures counted, the others still served."""

from __future__ import annotations

import logging

import pytest

from agent.outbox import Committed
from agent.services.fanout import CommitFanout


def group(n: int) -> list[Committed]:
    return [Committed(i, f"id{i}", i, 5, 0.0, "{}", "o2o.test") for i in range(n)]


def test_a_failing_consumer_is_counted_and_the_others_get_the_whole_group(
        caplog: pytest.LogCaptureFixture) -> None:
    got: dict[str, list[int]] = {"first": [], "last": []}
    fanout = CommitFanout()
    fanout.connect("first", lambda cs: got["first"].extend(c.n for c in cs))

    def broken(cs: list[Committed]) -> None:
        raise ValueError("odd event")
    fanout.connect("broken", broken)
    fanout.connect("last", lambda cs: got["last"].extend(c.n for c in cs))
    with caplog.at_level(logging.ERROR, "agent.services.fanout"):
        for _ in range(5):
            fanout(group(3))
    assert got == {"first": [0, 1, 2] * 5, "last": [0, 1, 2] * 5}
    assert fanout.failures == {"broken": 5}
    # logged the 1st, 2nd and 4th time: seen, not flooding
    assert [r.message for r in caplog.records] == [
        f"commit hook broken failed ({n} times so far)" for n in (1, 2, 4)]


def test_consumers_are_served_in_the_order_connected() -> None:
    order: list[str] = []
    fanout = CommitFanout()
    for name in ("uplink", "bus", "metrics", "kpis"):
        fanout.connect(name, lambda cs, name=name: order.append(name))  # type: ignore[misc]
    fanout(group(1))
    assert order == ["uplink", "bus", "metrics", "kpis"]
    assert fanout.failures == {}
