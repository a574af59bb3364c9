"""The kiosk's link over the one bus client: a refusal keeps the agent's reason, a lost agent
is AGENT_DOWN, and the subscription hands events over and says when it is up."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from agent.contracts import bus as proto
from agent.errors import Reason
from kiosk.errors import KioskError, KioskReason
from kiosk.link import AgentLink


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        msg = json.loads(line)
        if msg["op"] == "subscribe":
            writer.write(proto.encode({"req": msg["req"], "ok": True}))
            writer.write(proto.encode({"event": {"type": "o2o.nfc.tap", "seq": 1}}))
        elif msg["op"] == "checkin":
            writer.write(proto.encode(proto.error_reply(msg["req"], Reason.DISK_FULL,
                                                        "free disk space")))
        else:
            writer.write(proto.encode({"req": msg["req"], "ok": True, "ids": ["A"]}))
        await writer.drain()
    writer.close()


def test_a_refusal_keeps_the_agents_reason_and_the_connection(tmp_path: Path) -> None:
    path = tmp_path / "agent.sock"

    async def main() -> tuple[KioskError, dict[str, Any]]:
        server = await asyncio.start_unix_server(_serve, path=str(path))
        async with server:
            link = AgentLink(path, lambda e: None, lambda up, why: None)
            with pytest.raises(KioskError) as info:
                await link.request({"op": "checkin", "request": {}})
            after = await link.request({"op": "emit", "events": []})  # the same connection
            await link._drop()
            return info.value, after

    error, after = asyncio.run(main())
    assert error.reason is KioskReason.AGENT_REFUSED
    assert "free disk space" in str(error)
    assert getattr(error.__cause__, "reason", None) is Reason.DISK_FULL
    assert after["ids"] == ["A"]


def test_no_agent_is_agent_down(tmp_path: Path) -> None:
    async def main() -> None:
        await AgentLink(tmp_path / "none.sock", lambda e: None,
                        lambda up, why: None).request({"op": "ping"})

    with pytest.raises(KioskError) as info:
        asyncio.run(main())
    assert info.value.reason is KioskReason.AGENT_DOWN


def test_the_subscription_says_it_is_up_and_hands_events_over(tmp_path: Path) -> None:
    path = tmp_path / "agent.sock"
    states: list[tuple[bool, str]] = []

    async def main() -> list[Any]:
        got: list[Any] = []
        arrived = asyncio.Event()

        def on_event(event: Any) -> None:
            got.append(event)
            arrived.set()

        server = await asyncio.start_unix_server(_serve, path=str(path))
        async with server:
            link = AgentLink(path, on_event, lambda up, why: states.append((up, why)))
            task = asyncio.ensure_future(link.run())
            await asyncio.wait_for(arrived.wait(), 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return got

    assert asyncio.run(main()) == [{"type": "o2o.nfc.tap", "seq": 1}]
    assert states[-1] == (True, "connected")
