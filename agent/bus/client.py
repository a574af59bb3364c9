"""Blocking client of the local bus, for the CLI, tests and simple store integrations."""

from __future__ import annotations

import itertools
import json
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from agent.errors import AgentError, Reason


class BusClient:
    def __init__(self, path: Path, timeout: float | None = 30.0) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            self._sock.close()
            raise AgentError(
                Reason.BUS_UNAVAILABLE,
                f"the agent is not running (nothing listening on {path}); start it with "
                "'o2o-edge run' or 'systemctl start o2o-edge'",
            ) from exc
        except BlockingIOError as exc:  # the listen queue is full: the agent is flooded
            self._sock.close()
            raise AgentError(
                Reason.BUS_UNAVAILABLE,
                f"the agent at {path} is not taking connections now (too many at once); "
                "try again in a moment",
            ) from exc
        except PermissionError as exc:
            self._sock.close()
            raise AgentError(
                Reason.BUS_UNAVAILABLE,
                f"no permission to use {path}; run as the agent's user or join its group",
            ) from exc
        self._file = self._sock.makefile("rb")
        self._req = itertools.count(1)

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def __enter__(self) -> BusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, obj: dict[str, Any]) -> None:
        try:
            self._sock.sendall(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
        except OSError as exc:
            # The agent closes a connection it refuses (busy, evicted) right after saying
            # why: that line, if it arrived, is the useful answer, not the broken pipe.
            raise AgentError(Reason.BUS_UNAVAILABLE, self._parting_words()
                             or f"the agent closed the connection ({exc.strerror}); "
                             "try again in a moment") from exc

    def _parting_words(self) -> str:
        try:
            line = self._file.readline(64 * 1024)
            msg = json.loads(line) if line else None
        except (OSError, ValueError):
            return ""
        if isinstance(msg, dict) and msg.get("ok") is False and msg.get("error"):
            return f"the agent refused the connection: {msg['error']}"
        return ""

    def _read(self) -> dict[str, Any]:
        try:
            line = self._file.readline()
        except TimeoutError as exc:
            raise AgentError(Reason.BUS_UNAVAILABLE,
                             "the agent did not answer in time; check 'o2o-edge status' "
                             "or its log") from exc
        except OSError as exc:
            raise AgentError(Reason.BUS_UNAVAILABLE,
                             f"the agent closed the connection ({exc.strerror})") from exc
        if not line:
            raise AgentError(Reason.BUS_UNAVAILABLE, "the agent closed the connection")
        try:
            reply = json.loads(line)
        except ValueError as exc:
            raise AgentError(Reason.BUS_PROTOCOL,
                             f"unexpected reply: {line[:200]!r}") from exc
        if not isinstance(reply, dict):
            raise AgentError(Reason.BUS_PROTOCOL, f"unexpected reply: {line[:200]!r}")
        return reply

    def request(self, obj: dict[str, Any]) -> dict[str, Any]:
        req = next(self._req)
        self._send({**obj, "req": req})
        reply = self._read()
        if not reply.get("ok"):
            reason = reply.get("reason", "")
            kind = Reason.INVALID_EVENT if reason == "invalid-event" else Reason.BUS_PROTOCOL
            if reason == Reason.OUTBOX_FULL.value:
                kind = Reason.OUTBOX_FULL
            raise AgentError(kind, str(reply.get("error", "the agent refused the request")))
        return reply

    def emit(self, events: Sequence[dict[str, Any]]) -> list[str | None]:
        """Submit events; returns their ids once the agent has committed them — None for an
        event the agent withheld (an app user whose consent is withdrawn)."""
        reply = self.request({"op": "emit", "events": list(events)})
        return [None if i is None else str(i) for i in reply["ids"]]

    def status(self) -> dict[str, Any]:
        status = self.request({"op": "status"})["status"]
        assert isinstance(status, dict)
        return status

    def subscribe(self) -> Iterator[dict[str, Any]]:
        self.request({"op": "subscribe"})
        while True:
            msg = self._read()
            if "event" in msg:
                event = msg["event"]
                assert isinstance(event, dict)
                yield event
            elif msg.get("ok") is False:
                raise AgentError(Reason.BUS_PROTOCOL, str(msg.get("error")))
