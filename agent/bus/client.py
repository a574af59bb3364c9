"""The one client of the local bus (agent/contracts/bus.py): a blocking face for the CLI,
doctor, the simulators and store integrations, and an asyncio face for the kiosk. Both frame,
number and read through the contract's codec; every failure is an AgentError whose reason
the agent gave (a refusal) or BUS_UNAVAILABLE (nobody answering) with what to do next."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.contracts import bus as proto
from agent.contracts.bus import CloudEvent, EventIn, Op
from agent.contracts.status import Status, as_status
from agent.errors import AgentError, Reason


def _unavailable(path: Path, exc: OSError) -> AgentError | None:
    """What a failed connect means for the user, and what to do; None for a socket path that
    cannot be tried at all (the caller names it)."""
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError):
        return AgentError(
            Reason.BUS_UNAVAILABLE,
            f"the agent is not running (nothing listening on {path}); start it with "
            "'o2o-edge run' or 'systemctl start o2o-edge'")
    if isinstance(exc, BlockingIOError):  # the listen queue is full: the agent is flooded
        return AgentError(
            Reason.BUS_UNAVAILABLE,
            f"the agent at {path} is not taking connections now (too many at once); "
            "try again in a moment")
    if isinstance(exc, PermissionError):
        return AgentError(
            Reason.BUS_UNAVAILABLE,
            f"no permission to use {path}; run as the agent's user or join its group")
    return None


def _status(reply: dict[str, Any]) -> Status:
    try:
        return as_status(reply.get("status"))
    except ValueError as exc:
        raise AgentError(Reason.BUS_PROTOCOL, f"unexpected status: {exc}") from None


def _ids(reply: dict[str, Any]) -> list[str | None]:
    return [None if i is None else str(i) for i in reply["ids"]]


class BusClient:
    """A blocking connection; OSError only for a socket path that cannot be tried."""

    def __init__(self, path: Path, timeout: float | None = 30.0) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(path))
        except OSError as exc:
            self._sock.close()
            error = _unavailable(path, exc)
            if error is None:
                raise
            raise error from exc
        self._file = self._sock.makefile("rb")
        self._req = itertools.count(1)

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def __enter__(self) -> BusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, line: bytes) -> None:
        try:
            self._sock.sendall(line)
        except OSError as exc:
            # The agent closes a connection it refuses (busy, evicted) right after saying
            # why: that line, if it arrived, is the useful answer, not the broken pipe.
            raise AgentError(Reason.BUS_UNAVAILABLE, self._parting_words()
                             or f"the agent closed the connection ({exc.strerror}); "
                             "try again in a moment") from exc

    def _parting_words(self) -> str:
        try:
            line = self._file.readline(64 * 1024)
            msg = proto.decode(line) if line else None
        except (OSError, AgentError):
            return ""
        if msg is not None and msg.get("ok") is False and msg.get("error"):
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
        return proto.decode(line)

    def request(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """One request ({"op": ..., fields}) and its answer; a refusal raised as AgentError
        with the agent's reason."""
        self._send(proto.request(obj, next(self._req)))
        return proto.checked(self._read())

    def emit(self, events: Sequence[EventIn | dict[str, Any]]) -> list[str | None]:
        """Submit events; returns their ids once the agent has committed them — None for an
        event the agent withheld (an app user whose consent is withdrawn)."""
        return _ids(self.request({"op": Op.EMIT, "events": list(events)}))

    def status(self) -> Status:
        return _status(self.request({"op": Op.STATUS}))

    def subscribe(self) -> Iterator[CloudEvent]:
        self.request({"op": Op.SUBSCRIBE})
        while True:
            event = proto.stream_item(self._read())
            if event is not None:
                yield event


class AsyncBusClient:
    """An asyncio connection (open with `connect`); every wait is bounded by `timeout`
    (None: a subscription's stream, which waits for events as long as it takes)."""

    def __init__(self, path: Path, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, timeout: float | None) -> None:
        self.path = path
        self.timeout = timeout
        self._reader, self._writer = reader, writer
        self._req = itertools.count(1)

    @classmethod
    async def connect(cls, path: Path, timeout: float | None = 30.0) -> AsyncBusClient:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(path), limit=proto.MAX_LINE), timeout)
        except TimeoutError:
            raise AgentError(Reason.BUS_UNAVAILABLE,
                             f"the agent at {path} did not take the connection in time") from None
        except OSError as exc:
            raise _unavailable(path, exc) or AgentError(
                Reason.BUS_UNAVAILABLE,
                f"the agent is not reachable on {path} ({exc.strerror or exc})") from exc
        return cls(path, reader, writer, timeout)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    async def _read(self, timeout: float | None) -> dict[str, Any]:
        try:
            line = await asyncio.wait_for(self._reader.readline(), timeout)
        except TimeoutError:
            raise AgentError(Reason.BUS_UNAVAILABLE, "the agent did not answer in time") \
                from None
        except (OSError, ValueError) as exc:  # ValueError: a line over MAX_LINE
            raise AgentError(Reason.BUS_UNAVAILABLE,
                             f"the agent closed the connection ({exc})") from None
        if not line:
            raise AgentError(Reason.BUS_UNAVAILABLE, "the agent closed the connection")
        return proto.decode(line)

    async def request(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """As BusClient.request."""
        try:
            self._writer.write(proto.request(obj, next(self._req)))
            await asyncio.wait_for(self._writer.drain(), self.timeout)
        except (OSError, TimeoutError) as exc:
            raise AgentError(Reason.BUS_UNAVAILABLE,
                             f"the agent closed the connection ({exc})") from None
        return proto.checked(await self._read(self.timeout))

    async def emit(self, events: Sequence[EventIn | dict[str, Any]]) -> list[str | None]:
        return _ids(await self.request({"op": Op.EMIT, "events": list(events)}))

    async def status(self) -> Status:
        return _status(await self.request({"op": Op.STATUS}))

    async def subscribe(self) -> AsyncIterator[CloudEvent]:
        """Subscribe (AgentError if refused) and return the committed events as they come;
        the stream raises AgentError when it ends. The subscription stands once this
        returns: no event needs to come first."""
        await self.request({"op": Op.SUBSCRIBE})
        return self._events()

    async def _events(self) -> AsyncIterator[CloudEvent]:
        while True:
            event = proto.stream_item(await self._read(None))
            if event is not None:
                yield event
