"""What upstream may ask: each command's answer, and a bad argument answered as an error."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from agent.services.commands import UpstreamCommands
from agent.services.erasure import Erasure
from agent.storelink.commands import CommandError
from tests.unit.runtime.fakes import FakeRestarter, Recorder
from tests.unit.runtime.test_erasure import erasure


class FakeUplink:
    flushes = 0

    def flush(self) -> None:
        self.flushes += 1


def commands(uplink: FakeUplink | None = None) -> tuple[dict[str, Any], FakeRestarter,
                                                        Recorder]:
    restarter, capture = FakeRestarter(), Recorder()
    service: Erasure = erasure()[0]
    cmds = UpstreamCommands("boot-1", lambda: {"outbox": {"depth": 4}}, uplink, restarter,
                            capture, service)
    return cmds.handlers(), restarter, capture


def test_the_commands_upstream_may_ask() -> None:
    handlers, _, _ = commands()
    assert set(handlers) == {"erase-subject", "ping", "status", "flush", "set-log-level",
                             "restart", "reload-content"}
    assert handlers["ping"]({}) == {"pong": True, "bootid": "boot-1"}
    assert handlers["status"]({}) == {"outbox": {"depth": 4}}


def test_flush_drains_now_and_answers_with_the_outbox_depth() -> None:
    uplink = FakeUplink()
    handlers, _, _ = commands(uplink)
    assert handlers["flush"]({}) == {"outbox_depth": 4}
    assert uplink.flushes == 1
    assert commands(None)[0]["flush"]({}) == {"outbox_depth": 4}  # no uplink: nothing to do


def test_restart_and_reload_content() -> None:
    handlers, restarter, capture = commands()
    assert handlers["restart"]({}) == {"restarting": True}
    assert restarter.restarts == 1
    assert handlers["reload-content"]({}) == {"asked": "kiosk"}
    assert capture.of("o2o.link.command") == [{"name": "reload-content"}]


def test_set_log_level(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", root.level)  # put back after the test
    handlers, _, _ = commands()
    assert handlers["set-log-level"]({"level": "DEBUG"}) == {"level": "debug"}
    assert root.level == logging.DEBUG
    with pytest.raises(CommandError, match="level must be one of"):
        handlers["set-log-level"]({"level": "loud"})


def test_erase_subject_answers_with_the_counts_or_an_error() -> None:
    handlers, _, _ = commands()
    answer = asyncio.run(handlers["erase-subject"]({"subject": "app-1"}))
    assert answer["removed"]["outbox_events"] == 2
    with pytest.raises(CommandError, match="subject must be the identifier"):
        asyncio.run(handlers["erase-subject"]({}))
