"""The small parts the root wires with: the downstream port, the capture entry point, the
loop control."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import pytest

from agent.envelope import PendingEvent
from agent.services.capture import Capture
from agent.services.downstream_port import DownstreamPort
from agent.services.loop import LoopControl


def test_the_port_hands_messages_to_the_store_link_plugged_in() -> None:
    got: list[tuple[str, bytes, str, bytes]] = []

    async def handle(topic: str, raw: bytes, response: str, correlation: bytes) -> None:
        got.append((topic, raw, response, correlation))
    port = DownstreamPort()
    asyncio.run(port.handle("o2o/v1/s/all/config", b"early", "", b""))  # nothing plugged
    assert port.unplugged_drops == 1
    port.plug(handle)
    asyncio.run(port.handle("o2o/v1/s/all/config", b"{}", "r/1", b"c"))
    assert got == [("o2o/v1/s/all/config", b"{}", "r/1", b"c")]
    with pytest.raises(RuntimeError):
        port.plug(handle)


class FakeWriter:
    def __init__(self) -> None:
        self.submitted: list[PendingEvent] = []

    def submit(self, events: Sequence[PendingEvent]) -> Future[list[Any]]:
        self.submitted.extend(events)
        done: Future[list[Any]] = Future()
        done.set_result(["committed"])
        return done


def test_capture_withholds_without_consent_and_links_the_rest() -> None:
    writer = FakeWriter()
    capture = Capture(writer, lambda t, d: d.get("id") != "withdrawn",
                      lambda t, d: {**d, "campaign": "c1"}, clock=lambda: 1000.0)
    assert capture("o2o.ble.presence", {"id": "withdrawn"}).result(0) == []
    assert writer.submitted == []
    assert len(capture("o2o.ble.presence", {"id": "app-1"}).result(0)) == 1
    [event] = writer.submitted
    assert event.type == "o2o.ble.presence" and event.created == 1000.0
    assert json.loads(event.data_json) == {"id": "app-1", "campaign": "c1"}


def test_loop_control_does_nothing_before_the_agent_runs_then_stops_it() -> None:
    control = LoopControl()
    assert not control.running
    control.restart_soon()  # nothing running: nothing to restart
    control.later(0, lambda: None)

    async def main() -> list[str]:
        stop, ran = asyncio.Event(), []
        control.bind(asyncio.get_running_loop(), stop)
        assert control.running
        control.later(0, lambda: ran.append("later"))
        control.restart_soon()
        await asyncio.wait_for(stop.wait(), 5)
        return ran

    assert asyncio.run(main()) == ["later"]
