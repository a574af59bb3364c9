"""A warning repeated on every commit is written once a minute per kind, with the count of
those not written."""

from __future__ import annotations

import logging

import pytest

from agent.outbox.quietlog import QuietLog


def test_repeats_are_held_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    quiet = QuietLog(logging.getLogger("t.quiet"), every_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "t.quiet"):
        for _ in range(300):
            quiet.warning("disk-full", "disk full: %s", "no room")
            now[0] += 0.1
        quiet.warning("dropped", "dropped %d", 5)  # another kind is not held by the first
        now[0] = 61.0
        quiet.warning("disk-full", "disk full: %s", "no room")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["disk full: no room", "dropped 5",
                     "disk full: no room (299 more like it in the last 60 s not logged)"]
