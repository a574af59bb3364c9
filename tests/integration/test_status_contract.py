"""What a real agent answers matches its contracts: the status document
(agent/contracts/status.py) and the bus's answers (agent/contracts/bus.py) — every key it
sends is declared, every required key is there, at every level the contract types — so the
readers (status, metrics, telemetry, doctor, the kiosk) read what is sent."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pytest

from agent.bus.client import BusClient
from agent.contracts import bus as proto
from agent.contracts import status as contract
from agent.errors import Reason
from tests.conftest import AgentProcess, wait_for, write_config

# sections whose owner adds fields of its own (each driver backend reports what it has)
OPEN = {contract.DriverStatus}


def _problems(value: Any, kind: Any, where: str) -> list[str]:
    origin = typing.get_origin(kind)
    if typing.is_typeddict(kind):
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        hints = typing.get_type_hints(kind)
        out = [f"{where}.{k}: missing" for k in kind.__required_keys__ if k not in value]
        for key, item in value.items():
            if key not in hints:
                if kind not in OPEN:
                    out.append(f"{where}.{key}: not in {kind.__name__}")
                continue
            out += _problems(item, hints[key], f"{where}.{key}")
        return out
    if origin is dict and isinstance(value, dict):
        inner = typing.get_args(kind)[1]
        return [p for k, v in value.items() for p in _problems(v, inner, f"{where}[{k}]")]
    return []


def test_a_running_agents_status_is_the_contracts(tmp_path: Path,
                                                   agent_factory: list[AgentProcess]) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    cfg = write_config(tmp_path / "config.toml", url="", extra=f"""
[qr]
enabled = true
camera = "{tmp_path / 'no-such-camera.avi'}"
[nfc]
enabled = true
reader = "usb:054c:06c3"
[ble]
enabled = true
replay = "{tmp_path / 'empty.jsonl'}"
replay_speed = 0
""")
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    wait_for(lambda: agent.status()["nfc"]["reader"]["state"] == "no-reader", 30,
             what="the touchpoints report")
    st = agent.status()
    assert {"ble", "nfc", "qr"} <= set(st)
    problems = _problems(st, contract.Status, "status")
    assert not problems, "\n".join(problems)
    assert contract.as_status(st) is st


def test_the_bus_answers_are_the_contracts(tmp_path: Path,
                                          agent_factory: list[AgentProcess]) -> None:
    agent = AgentProcess(write_config(tmp_path / "config.toml", url=""))
    agent_factory.append(agent)
    agent.start()
    with BusClient(agent.socket, timeout=10) as bus:
        answers = {
            proto.PingReply: bus.request({"op": proto.Op.PING}),
            proto.EmitReply: bus.request({"op": proto.Op.EMIT, "events": [
                {"type": "o2o.kiosk.view", "data": {"page": "p"}}]}),
            proto.QueueReply: bus.request({"op": proto.Op.QUEUE}),
            proto.KpisReply: bus.request({"op": proto.Op.KPIS}),
            proto.HandoverReply: bus.request({"op": proto.Op.HANDOVER, "order": "none"}),
            proto.CheckinReply: bus.request({"op": proto.Op.CHECKIN, "request": {
                "kind": "pickup", "code": "NOSUCH"}}),
        }
        with pytest.raises(proto.BusRefusal) as refused:
            bus.request({"op": "no-such-op"})
        assert refused.value.reason is Reason.BUS_PROTOCOL
    problems = [p for kind, answer in answers.items()
                for p in _problems(answer, kind, kind.__name__)]
    assert not problems, "\n".join(problems)


def test_the_check_catches_an_undeclared_key() -> None:
    """The check itself: a key the contract does not declare, a missing required one."""
    doc = {"agent": {"pid": 1, "surprise": 2}, "outbox": {}, "uplink": {}, "components": {}}
    problems = _problems(doc, contract.Status, "status")
    assert "status.agent.surprise: not in AgentInfo" in problems
    assert "status.agent.version: missing" in problems
    assert "status.bus: missing" in problems
