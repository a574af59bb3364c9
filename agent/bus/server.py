"""The local bus: a Unix socket speaking JSON lines, for the kiosk, the CLI and store systems.

Requests (one JSON object per line, `req` is echoed back):
  {"op": "emit", "events": [{"type": T, "data": D, "priority"?: 0-9, "id"?: ULID}]}
      -> {"ok": true, "ids": [...], "seqs": [...]} once the events are committed; an event
         about an app user whose consent is withdrawn is not kept: null in its place, and
         "withheld": how many
  {"op": "status"}     -> {"ok": true, "status": {...}}
  {"op": "subscribe"}  -> {"ok": true}, then {"event": {...}} for every committed event
  {"op": "ping"}       -> {"ok": true}
Errors: {"ok": false, "reason": R, "error": "what went wrong and what to do"}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.envelope import PendingEvent, make_pending
from agent.errors import AgentError, Reason
from agent.outbox import Committed, OutboxWriter

log = logging.getLogger(__name__)

MAX_LINE = 1024 * 1024
MAX_EVENTS_PER_REQUEST = 5000
SUBSCRIBER_QUEUE = 10_000
SOCKET_MODE = 0o660


def _error(req: Any, reason: str, message: str) -> dict[str, Any]:
    return {"req": req, "ok": False, "reason": reason, "error": message}


class BusServer:
    def __init__(
        self, path: Path, writer: OutboxWriter, status: Callable[[], dict[str, Any]],
        ops: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] | None = None,
        enrich: Callable[[str, Any], Any] | None = None,
        allow: Callable[[str, Any], bool] | None = None,
    ) -> None:
        """`ops`: further request handlers by op name (check-in for the kiosk); each takes the
        request and returns the reply's fields, and runs in a worker thread."""
        self.path = path
        self.ops = ops or {}
        self.enrich = enrich  # adds campaign/visit to events on their way in
        self.allow = allow  # consent: False for an event that must not be reported
        self.writer = writer
        self.status = status
        self.clients = 0
        self.requests = 0
        self._server: asyncio.AbstractServer | None = None
        self._subscribers: set[asyncio.Queue[bytes | None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_socket()
        old = os.umask(0o117)  # the socket is born 0660, never briefly world-writable
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_LINE
            )
        finally:
            os.umask(old)
        os.chmod(self.path, SOCKET_MODE)

    def _remove_stale_socket(self) -> None:
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise AgentError(
                Reason.BUS_UNAVAILABLE,
                f"{self.path} exists and is not a socket; remove it or set [bus] socket",
            )
        import socket as _socket

        probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            probe.connect(str(self.path))
        except OSError:
            self.path.unlink()  # stale: left by an agent that died
        else:
            raise AgentError(
                Reason.BUS_UNAVAILABLE,
                f"another agent is already serving {self.path}; stop it first "
                "(o2o-edge status shows it)",
            )
        finally:
            probe.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
        for q in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # --- live stream -------------------------------------------------------------------

    def publish_committed(self, committed: list[Committed]) -> None:
        """Called from the writer thread."""
        if self._subscribers and self._loop is not None and not self._loop.is_closed():
            lines = [b'{"event":' + c.body.encode() + b"}\n" for c in committed]
            self._loop.call_soon_threadsafe(self._fan_out, lines)

    def _fan_out(self, lines: list[bytes]) -> None:
        for q in list(self._subscribers):
            for line in lines:
                try:
                    q.put_nowait(line)
                except asyncio.QueueFull:
                    # a subscriber that cannot keep up is told, not allowed to stall capture
                    self._subscribers.discard(q)
                    with contextlib.suppress(asyncio.QueueFull):
                        q.put_nowait(b'{"ok":false,"reason":"lagged","error":"too slow"}\n')
                    break

    # --- connections ---------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients += 1
        try:
            while True:
                try:
                    line = await reader.readline()
                except (asyncio.LimitOverrunError, ValueError):
                    await self._send(writer, _error(None, "bus-protocol",
                                                    f"line longer than {MAX_LINE} bytes"))
                    return
                if not line:
                    return
                if not line.strip():
                    continue
                self.requests += 1
                reply = await self._handle(line, reader, writer)
                if reply is None:
                    return  # the connection became a subscription and has ended
                await self._send(writer, reply)
        except (ConnectionError, BrokenPipeError):
            return
        finally:
            self.clients -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _send(self, writer: asyncio.StreamWriter, obj: dict[str, Any]) -> None:
        writer.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
        await writer.drain()

    async def _handle(
        self, line: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> dict[str, Any] | None:
        try:
            msg = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _error(None, "bus-protocol", f"request is not JSON: {exc}")
        if not isinstance(msg, dict):
            return _error(None, "bus-protocol", "request must be a JSON object")
        req = msg.get("req")
        op = msg.get("op")
        if op == "ping":
            return {"req": req, "ok": True, "time": time.time()}
        if op == "status":
            return {"req": req, "ok": True, "status": self.status()}
        if op == "emit":
            return await self._emit(req, msg)
        if op == "subscribe":
            await self._subscribe(req, reader, writer)
            return None
        handler = self.ops.get(op) if isinstance(op, str) else None
        if handler is not None:
            try:
                return {"req": req, "ok": True, **await asyncio.to_thread(handler, msg)}
            except AgentError as exc:
                return _error(req, exc.reason.value, str(exc))
        known = ", ".join(["emit", "status", "subscribe", "ping", *self.ops])
        return _error(req, "bus-protocol", f"unknown op {op!r}; use one of: {known}")

    async def _emit(self, req: Any, msg: dict[str, Any]) -> dict[str, Any]:
        raw = msg.get("events")
        if not isinstance(raw, list) or not raw:
            return _error(req, "invalid-event", '"events" must be a non-empty list')
        if len(raw) > MAX_EVENTS_PER_REQUEST:
            return _error(req, "invalid-event",
                          f"at most {MAX_EVENTS_PER_REQUEST} events per request")
        now = time.time()
        pending: list[PendingEvent] = []
        kept: list[int] = []  # positions of the events not withheld
        try:
            for i, ev in enumerate(raw):
                if not isinstance(ev, dict) or "type" not in ev:
                    raise AgentError(Reason.INVALID_EVENT,
                                     f"event {i}: must be an object with \"type\" and \"data\"")
                data = ev.get("data")
                if isinstance(ev["type"], str):  # else make_pending refuses it below
                    if self.allow is not None and not self.allow(ev["type"], data):
                        continue
                    if self.enrich is not None:
                        data = self.enrich(ev["type"], data)
                kept.append(i)
                pending.append(make_pending(ev["type"], data, now,
                                            ev.get("priority"), _valid_id(ev.get("id"))))
        except AgentError as exc:
            return _error(req, exc.reason.value, str(exc))
        try:
            committed = await asyncio.wrap_future(self.writer.submit(pending)) if pending else []
        except AgentError as exc:
            return _error(req, exc.reason.value, str(exc))
        ids: list[str | None] = [None] * len(raw)
        seqs: list[int | None] = [None] * len(raw)
        for i, c in zip(kept, committed, strict=True):
            ids[i], seqs[i] = c.id, c.seq
        reply: dict[str, Any] = {"req": req, "ok": True, "ids": ids, "seqs": seqs}
        if len(kept) < len(raw):
            reply["withheld"] = len(raw) - len(kept)
        return reply

    async def _subscribe(
        self, req: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        q: asyncio.Queue[bytes | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._subscribers.add(q)
        try:
            await self._send(writer, {"req": req, "ok": True})
            closed = asyncio.ensure_future(reader.read())  # EOF when the client goes away
            try:
                while True:
                    getter = asyncio.ensure_future(q.get())
                    done, _ = await asyncio.wait({getter, closed},
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if closed in done:
                        getter.cancel()
                        return
                    line = getter.result()
                    if line is None:
                        return
                    writer.write(line)
                    await writer.drain()
            finally:
                closed.cancel()
        finally:
            self._subscribers.discard(q)


def _valid_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and 1 <= len(value) <= 64 and value.isascii() and value.isalnum():
        return value
    raise AgentError(Reason.INVALID_EVENT, "event id must be 1-64 letters and digits (a ULID)")
