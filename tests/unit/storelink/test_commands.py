"""Commands against hostile requests, without a broker: where an answer may go, what a refused
request is told, how fast refusals are answered, and how many bytes of requests may wait."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.keys import public_key_text
from agent.storelink.cache import LinkCache
from agent.storelink.commands import REFUSAL_BURST, Commands
from agent.storelink.docs import sign
from agent.storelink.receiver import DocReceiver

KEY = Ed25519PrivateKey.generate()
BASE = "o2o/v1/berlin-01"
OURS = f"{BASE}/pi-1/cmd-reply/ops"


@pytest.fixture
def cmds(tmp_path: Path) -> tuple[Commands, list[tuple[str, bytes, dict[str, Any]]]]:
    sent: list[tuple[str, bytes, dict[str, Any]]] = []
    rx = DocReceiver("berlin-01", "pi-1", [public_key_text(KEY.public_key())],
                     LinkCache(tmp_path / "store.db"), {}, lambda t, d: None)
    clock = [0.0]
    c = Commands(rx, lambda t, corr, p: sent.append((t, corr, json.loads(p))),
                 {"ping": lambda args: {"pong": True}}, clock=lambda: clock[0])
    return c, sent


def signed(name: str, version: int, **body: Any) -> bytes:
    return sign(KEY, "cmd", "berlin-01", "pi-1", version, time.time() - 5, time.time() + 60,
                {"name": name, "args": {}, **body})


@pytest.mark.parametrize("where", [
    "o2o/v1/other-store/pi-1/cmd-reply/x", f"{BASE}/pi-1/events", f"{BASE}/pi-1/state",
    f"{BASE}/pi-2/cmd-reply/x", f"{BASE}/pi-1/cmd-reply/", f"{BASE}/pi-1/cmd-reply/+",
    f"{BASE}/pi-1/cmd-reply/#", f"{BASE}/pi-1/cmd-reply/a\0b", f"{BASE}/pi-1/cmd-reply/\ud800",
    f"{BASE}/pi-1/cmd-reply/" + "x" * 600, "ops/replies"])
def test_answers_go_nowhere_outside_the_reply_namespace(
        cmds: tuple[Commands, list[Any]], where: str) -> None:
    c, sent = cmds
    c.handle(f"{BASE}/pi-1/cmd/ping", b"junk", where, b"1")
    c.handle(f"{BASE}/pi-1/cmd/ping", signed("ping", 1), where, b"2")
    assert sent == []
    assert c.receiver.commands["reply-topic-refused"] == 2
    assert c.receiver.refused == {"malformed": 1}
    assert c.receiver.accepted == {"cmd": 1}  # the signed one ran all the same


def test_a_refused_request_is_told_its_reason_only(cmds: tuple[Commands, list[Any]]) -> None:
    c, sent = cmds
    forged = sign(Ed25519PrivateKey.generate(), "cmd", "berlin-01", "pi-1", 1, 0, 2e9,
                  {"name": "ping" * 1000})
    c.handle(f"{BASE}/pi-1/cmd/ping", forged, OURS, b"c")
    c.handle(f"{BASE}/all/cmd/ping", signed("ping", 2), f"{BASE}/all/cmd-reply/fleet", b"d")
    assert sent[0][:2] == (OURS, b"c")
    assert {k: v for k, v in sent[0][2].items() if k != "time"} == {
        "ok": False, "command": "ping", "device": "pi-1", "error": "unknown-key"}
    assert sent[1][2]["ok"] and sent[1][2]["device"] == "pi-1"


def test_the_body_may_name_the_reply_topic_on_mqtt_311(cmds: tuple[Commands, list[Any]]) -> None:
    c, sent = cmds
    c.handle(f"{BASE}/pi-1/cmd/ping", signed("ping", 1, response_topic=OURS, correlation="k"),
             "", b"")
    c.handle(f"{BASE}/pi-1/cmd/ping", json.dumps({"o2o": "doc/1", "body": {
        "response_topic": OURS, "correlation": "\ud800"}}).encode(), "", b"")
    c.handle(f"{BASE}/pi-1/cmd/ping", b"[" * 100_000, "", b"")  # nothing to read a topic from
    assert [(t, corr, a["ok"]) for t, corr, a in sent] == [(OURS, b"k", True)]
    assert c.receiver.commands["no-reply-topic"] == 2


def test_refusals_are_answered_at_a_bounded_rate(cmds: tuple[Commands, list[Any]]) -> None:
    c, sent = cmds
    for i in range(1000):
        c.handle(f"{BASE}/pi-1/cmd/ping", b"junk", OURS, str(i).encode())
    assert len(sent) == REFUSAL_BURST
    assert c.receiver.commands["refusals-not-answered"] == 1000 - REFUSAL_BURST
    assert c.receiver.refused == {"malformed": 1000}  # all counted all the same


def test_a_command_that_fails_is_answered_and_counted(tmp_path: Path) -> None:
    sent: list[dict[str, Any]] = []
    rx = DocReceiver("berlin-01", "pi-1", [public_key_text(KEY.public_key())],
                     LinkCache(tmp_path / "store.db"), {}, lambda t, d: None)

    def broken(args: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("oops")

    c = Commands(rx, lambda t, corr, p: sent.append(json.loads(p)), {"ping": broken})
    c.handle(f"{BASE}/pi-1/cmd/ping", signed("ping", 1), OURS, b"")
    assert sent[0]["ok"] is False and sent[0]["error"].startswith("failed:")
    assert rx.failed == {"internal": 1}
