"""The periodic jobs, driven by a sleep that counts the rounds instead of waiting."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agent.services import periodic
from tests.unit.runtime.fakes import Recorder


class Rounds(Exception):
    pass


def sleeper(rounds: int) -> tuple[list[float], Any]:
    """A sleep that records each delay and ends the job after `rounds` of them."""
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)
        if len(slept) > rounds:
            raise Rounds
    return slept, sleep


def test_retention_sweeps_shortly_after_start_then_daily_and_records_what_went() -> None:
    removed = iter([{"orders": 2, "consent": 0}, {"orders": 0}])
    days: list[float] = []
    limits = iter([90.0, 30.0])  # a live configuration changed the limit in between

    def sweep(retention_days: float) -> dict[str, int]:
        days.append(retention_days)
        return next(removed)
    slept, sleep = sleeper(2)
    capture = Recorder()
    with pytest.raises(Rounds):
        asyncio.run(periodic.sweep_retention(sweep, lambda: next(limits), capture, sleep))
    assert slept == [periodic.RETENTION_FIRST_S, periodic.RETENTION_EVERY_S,
                     periodic.RETENTION_EVERY_S]
    assert days == [90.0, 30.0]
    # only a sweep that removed something is recorded
    assert capture.events == [("o2o.privacy.retention",
                               {"removed": {"orders": 2, "consent": 0}})]


def test_kpis_are_written_out_at_each_interval() -> None:
    flushed: list[int] = []
    slept, sleep = sleeper(3)
    with pytest.raises(Rounds):
        asyncio.run(periodic.flush_kpis(lambda: flushed.append(1), 5.0, sleep))
    assert flushed == [1, 1, 1] and slept == [5.0] * 4


def test_the_heap_is_trimmed_at_each_interval_and_not_at_all_without_glibc() -> None:
    trims: list[int] = []
    slept, sleep = sleeper(2)

    def trim(pad: int) -> int:
        trims.append(pad)
        return 1
    with pytest.raises(Rounds):
        asyncio.run(periodic.trim_heap(trim, 10.0, sleep))
    assert trims == [0, 0]
    slept, sleep = sleeper(2)
    asyncio.run(periodic.trim_heap(None, 10.0, sleep))  # returns: nothing to do
    assert slept == []
