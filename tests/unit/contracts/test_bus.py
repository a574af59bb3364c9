"""The bus protocol's codec and its one client: a refusal's reason comes back as the very
Reason the agent gave, and both faces of the client speak the same lines."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from agent.bus.client import AsyncBusClient, BusClient
from agent.contracts import bus as proto
from agent.errors import AgentError, Reason


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_round_trips(reason: Reason) -> None:
    """What the server writes for a refusal is read back as the same Reason (the client
    used to fold everything but invalid-event and outbox-full into bus-protocol)."""
    line = proto.encode(proto.error_reply(3, reason, "what to do"))
    reply = proto.decode(line)
    with pytest.raises(AgentError, match="what to do") as info:
        proto.checked(reply)
    assert info.value.reason is reason
    assert json.loads(line) == {"req": 3, "ok": False, "reason": reason.value,
                                "error": "what to do"}


def test_an_unknown_reason_keeps_its_words() -> None:
    err = proto.refusal({"ok": False, "reason": "from-a-newer-agent", "error": "try later"})
    assert err.reason is Reason.BUS_PROTOCOL and str(err) == "try later"


def test_a_reply_that_is_not_an_object_is_a_protocol_error() -> None:
    for line in (b"[1]\n", b"not json\n"):
        with pytest.raises(AgentError) as info:
            proto.decode(line)
        assert info.value.reason is Reason.BUS_PROTOCOL


def test_the_stream_skips_other_lines_and_raises_the_parting_refusal() -> None:
    assert proto.stream_item({"event": {"type": "o2o.nfc.tap"}}) == {"type": "o2o.nfc.tap"}
    assert proto.stream_item({"ok": True}) is None
    with pytest.raises(AgentError) as info:
        proto.stream_item({"ok": False, "reason": "lagged", "error": "subscribe again"})
    assert info.value.reason is Reason.LAGGED


def test_a_request_line_is_the_wire_format() -> None:
    line = proto.request({"op": proto.Op.EMIT, "events": [{"type": "a.b", "data": {}}]}, 7)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"op": "emit", "events": [{"type": "a.b", "data": {}}],
                                "req": 7}


class _Agent:
    """A stand-in agent on a Unix socket: answers each request by `answer`, and a subscribe
    with two events and a lagged refusal."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[dict[str, Any]] = []

    def answer(self, msg: dict[str, Any]) -> dict[str, Any]:
        if msg["op"] == "status":
            return {"req": msg["req"], "ok": True, "status": {
                "agent": {"pid": 1}, "outbox": {}, "uplink": {}, "components": {}}}
        if msg["op"] == "emit":
            return {"req": msg["req"], "ok": True, "ids": ["A", None], "seqs": [1, None]}
        return {"req": msg["req"], "ok": False, "reason": "disk-full", "error": "free disk"}

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            msg = json.loads(line)
            self.seen.append(msg)
            if msg["op"] == "subscribe":
                writer.write(proto.encode({"req": msg["req"], "ok": True}))
                for seq in (1, 2):
                    writer.write(proto.encode({"event": {"type": "o2o.nfc.tap", "seq": seq}}))
                writer.write(proto.encode({"ok": False, "reason": "lagged", "error": "again"}))
            else:
                writer.write(proto.encode(self.answer(msg)))
            await writer.drain()
        writer.close()


def _exercise_sync(path: Path) -> list[Any]:
    out: list[Any] = []
    with BusClient(path, timeout=5) as bus:
        out.append(bus.emit([{"type": "a.b", "data": {}}, {"type": "a.b", "data": {}}]))
        out.append(bus.status()["agent"]["pid"])
        try:
            bus.request({"op": "checkin"})
        except AgentError as exc:
            out.append(exc.reason)
    with BusClient(path, timeout=5) as bus:
        events = []
        try:
            for event in bus.subscribe():
                events.append(event["seq"])
        except AgentError as exc:
            out.append((events, exc.reason))
    return out


async def _exercise_async(path: Path) -> list[Any]:
    out: list[Any] = []
    bus = await AsyncBusClient.connect(path, timeout=5)
    out.append(await bus.emit([{"type": "a.b", "data": {}}, {"type": "a.b", "data": {}}]))
    out.append((await bus.status())["agent"]["pid"])
    try:
        await bus.request({"op": "checkin"})
    except AgentError as exc:
        out.append(exc.reason)
    await bus.close()
    stream = await AsyncBusClient.connect(path, timeout=5)
    events = []
    try:
        async for event in await stream.subscribe():
            events.append(event["seq"])
    except AgentError as exc:
        out.append((events, exc.reason))
    await stream.close()
    return out


def test_both_faces_of_the_client_read_the_same_answers(tmp_path: Path) -> None:
    agent = _Agent(tmp_path / "agent.sock")
    expected = [["A", None], 1, Reason.DISK_FULL, ([1, 2], Reason.LAGGED)]

    async def main() -> tuple[list[Any], list[Any]]:
        server = await asyncio.start_unix_server(agent.serve, path=str(agent.path))
        async with server:
            sync = await asyncio.to_thread(_exercise_sync, agent.path)
            return sync, await _exercise_async(agent.path)

    sync, async_ = asyncio.run(main())
    assert sync == expected
    assert async_ == expected
    assert [m["req"] for m in agent.seen[:3]] == [1, 2, 3]  # numbered per connection


def test_no_agent_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="o2o-edge run") as info:
        BusClient(tmp_path / "none.sock")
    assert info.value.reason is Reason.BUS_UNAVAILABLE

    async def main() -> None:
        await AsyncBusClient.connect(tmp_path / "none.sock", timeout=1)

    with pytest.raises(AgentError, match="o2o-edge run") as info:
        asyncio.run(main())
    assert info.value.reason is Reason.BUS_UNAVAILABLE
