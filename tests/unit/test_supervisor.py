from __future__ import annotations

import asyncio
import logging
import time

import pytest

from agent.supervisor import Supervisor
from drivers.retry import Backoff


def test_failing_component_is_restarted_and_reported() -> None:
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError(f"boom {len(runs)}")
        await asyncio.Event().wait()  # then healthy forever

    async def main() -> dict[str, dict[str, object]]:
        sup = Supervisor(backoff_min_s=0.001, backoff_max_s=0.01)
        sup.spawn("reader", flaky)
        while len(runs) < 3:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)
        snap = sup.snapshot()
        await sup.stop()
        return snap

    snap = asyncio.run(main())
    assert snap["reader"]["state"] == "running"
    assert snap["reader"]["restarts"] == 2
    assert snap["reader"]["last_error"] == "RuntimeError: boom 2"


def test_backoff_is_exponential_with_full_jitter() -> None:
    import random

    b = Backoff(0.5, 8.0, random.Random(1))
    delays = [b.next_delay() for _ in range(10)]
    ceilings = [min(8.0, 0.5 * 2**i) for i in range(10)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays[5:]) > 2.0  # it does grow
    b.reset()
    assert b.next_delay() <= 0.5


def test_stop_does_not_wait_forever_for_a_component_that_hangs_on_its_way_out(
        caplog: pytest.LogCaptureFixture) -> None:

    async def stuck_cleanup() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(30)  # a driver call that takes far too long to return

    async def main() -> float:
        sup = Supervisor()
        sup.spawn("camera", stuck_cleanup)
        await asyncio.sleep(0.01)
        t = time.monotonic()
        await sup.stop(timeout=0.2)
        took = time.monotonic() - t
        for task in asyncio.all_tasks() - {asyncio.current_task()}:
            task.cancel()  # the second cancellation ends the stuck cleanup
        return took

    with caplog.at_level(logging.WARNING, logger="agent.supervisor"):
        took = asyncio.run(main())
    assert took < 5
    assert "component camera did not stop within 0s" in caplog.text
