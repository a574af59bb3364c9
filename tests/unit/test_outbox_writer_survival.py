"""The outbox writer thread outlives any one bad submission; if it ever stops, callers are
told at once instead of waiting for ever."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from agent.envelope import PendingEvent, make_pending
from agent.errors import AgentError, Reason
from agent.outbox import OutboxReader, OutboxWriter


def writer(path: Path, **kw: Any) -> OutboxWriter:
    w = OutboxWriter(path, max_bytes=50 * 1024 * 1024, ttl_s=86400.0, source="o2o-edge://s/d",
                     bootid="BOOT1", **kw)
    w.start()
    return w


def poisoned() -> PendingEvent:
    """What slipped past validation before: a str that only fails when encoded to UTF-8."""
    good = make_pending("o2o.kiosk.note", {"note": "x"}, time.time())
    return good._replace(data_json='{"note":"\ud800"}')


def depth(path: Path) -> int:
    r = OutboxReader(path)
    try:
        return int(r.stats()["depth"])
    finally:
        r.close()


def test_a_submission_the_store_cannot_take_fails_alone_and_the_writer_goes_on(
        tmp_path: Path) -> None:
    w = writer(tmp_path / "o.db", group_commit_ms=300)
    try:
        now = time.time()
        before = w.submit([make_pending("o2o.kiosk.view", {"i": 1}, now)])
        bad = w.submit([poisoned()])  # same commit group as its neighbours
        after = w.submit([make_pending("o2o.kiosk.view", {"i": 2}, now)])
        with pytest.raises(AgentError, match="could not store") as err:
            bad.result(10)
        assert err.value.reason is Reason.INVALID_EVENT
        assert len(before.result(10)) == 1 and len(after.result(10)) == 1
        later = w.submit([make_pending("o2o.kiosk.view", {"i": 3}, time.time())]).result(10)
        assert [c.seq for c in later] == [3]  # no hole in seq for the refused one
        assert w.alive
    finally:
        w.stop()
    assert depth(tmp_path / "o.db") == 3


class _Boom(BaseException):
    pass


def test_a_dead_writer_fails_submits_at_once_and_says_so(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    w = writer(tmp_path / "o.db")

    def explode(*a: object) -> None:
        raise _Boom("simulated")
    w._commit = explode  # type: ignore[method-assign]
    queued = w.submit([make_pending("o2o.kiosk.view", {}, time.time())])
    with pytest.raises(AgentError, match="writer has stopped") as err:
        queued.result(10)  # answered, not left waiting
    assert err.value.reason is Reason.OUTBOX_CLOSED
    deadline = time.monotonic() + 10
    while w.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not w.alive and "stopped" in w.last_error
    t0 = time.monotonic()
    with pytest.raises(AgentError, match="restart the agent"):
        w.submit([make_pending("o2o.kiosk.view", {}, time.time())]).result(5)
    assert time.monotonic() - t0 < 1
    assert any("writer thread stopped" in r.message for r in caplog.records)
    w._store.close()  # type: ignore[union-attr]
