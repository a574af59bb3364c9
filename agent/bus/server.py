"""The local bus: a Unix socket speaking JSON lines, for the kiosk, the CLI and store systems.

Requests (one JSON object per line, `req` is echoed back):
  {"op": "emit", "events": [{"type": T, "data": D, "priority"?: 0-9}]}
      -> {"ok": true, "ids": [...], "seqs": [...]} once the events are committed; an event
         about an app user whose consent is withdrawn is not kept: null in its place, and
         "withheld": how many
  {"op": "status"}     -> {"ok": true, "status": {...}}
  {"op": "subscribe"}  -> {"ok": true}, then {"event": {...}} for every committed event
  {"op": "ping"}       -> {"ok": true}
Errors: {"ok": false, "reason": R, "error": "what went wrong and what to do"}; every request
gets exactly one answer line and the connection goes on (but for a line over MAX_LINE: the
framing is lost, the answer is the connection's last).

What a client may send is bounded (agent/bus/limits.py), and every refusal is counted in
`status` (`bus`):
- An emit is all or nothing: one invalid event refuses the request, saying which and why
  (type: dotted lowercase words, at most 128 characters; data: JSON of valid Unicode, at most
  64 KiB; priority 0-9). Types under o2o.agent., o2o.privacy. and o2o.link. are the agent's
  own record and are refused from the bus; so is a new type once bus clients have introduced
  MAX_BUS_TYPES distinct ones in this boot.
- Event ids are the agent's: every committed event gets a fresh ULID, so no client can make
  an event that upstream would take for another (the same id twice means a duplicate there).
  An event carrying an "id" is refused; put a client's own reference in its data.
- A subscriber's backlog is bounded in bytes; a subscriber that falls behind is told
  {"ok": false, "reason": "lagged"} and dropped (it may subscribe again).
- At most MAX_CONNECTIONS connections: at the cap, the one idle longest (never having sent a
  request first) is closed to make room, with {"reason": "evicted"}; when none is idle, the
  new one is answered {"reason": "busy"} and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.bus.edge import (
    LAGGED,
    Refused,
    Stalled,
    check_events,
    error,
    parse,
    short,
    until_eof,
)
from agent.bus.limits import (
    MAX_CONNECTIONS,
    SEND_TIMEOUT_S,
    BusCounters,
    Conn,
    Subscriber,
    close_with,
    line,
    pick_victim,
)
from agent.envelope import PendingEvent, make_pending
from agent.errors import AgentError, Reason
from agent.outbox import Committed, OutboxWriter

log = logging.getLogger(__name__)

MAX_LINE = 1024 * 1024
MAX_EVENTS_PER_REQUEST = 5000
SOCKET_MODE = 0o660
_HIGH_WATER = 64 * 1024  # asyncio's default: above it a write waits for the peer


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
        self.counters = BusCounters()
        self._server: asyncio.AbstractServer | None = None
        self._subscribers: set[Subscriber] = set()
        self._conns: set[Conn] = set()
        self._types: set[str] = set()  # event types bus clients introduced (MAX_BUS_TYPES)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: set[asyncio.Future[None]] = set()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def status_part(self) -> dict[str, Any]:
        """The bus's part of the status document."""
        return {"socket": str(self.path), "clients": self.clients,
                "subscribers": len(self._subscribers), "requests": self.requests,
                "event_types": len(self._types), **self.counters.snapshot()}

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
        for sub in list(self._subscribers):
            sub.end()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # --- live stream -------------------------------------------------------------------

    def publish_committed(self, committed: list[Committed]) -> None:
        """Called from the writer thread."""
        if self._subscribers and self._loop is not None and not self._loop.is_closed():
            lines = [b'{"event":' + c.body.encode() + b"}\n" for c in committed]
            self._loop.call_soon_threadsafe(self._fan_out, lines)

    def _fan_out(self, lines: list[bytes]) -> None:
        for sub in list(self._subscribers):
            if not sub.offer(lines):
                # a subscriber that cannot keep up is told, not allowed to stall capture
                self._subscribers.discard(sub)
                self.counters.lagged_subscribers += 1

    # --- connections ---------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Conn(writer)
        if len(self._conns) >= MAX_CONNECTIONS and not self._make_room():
            self.counters.refused_connections += 1
            await close_with(writer, line(error(
                None, "busy", f"the agent already serves {MAX_CONNECTIONS} bus connections; "
                "close idle ones (o2o-edge status shows them) and try again")))
            return
        self._conns.add(conn)
        self.clients += 1
        try:
            while True:
                try:
                    raw = await reader.readline()
                except (asyncio.LimitOverrunError, ValueError):
                    self.counters.refused_requests["line-too-long"] += 1
                    conn.closing = True
                    await close_with(writer, line(error(
                        None, "bus-protocol",
                        f"request line longer than {MAX_LINE} bytes; the connection is closed")))
                    return
                if not raw:
                    return
                if not raw.strip():
                    continue
                self.requests += 1
                conn.busy = True
                answer = await self._handle(raw, reader, writer, conn)
                if answer is None:
                    return  # the connection became a subscription and has ended
                await self._send(writer, answer)
                conn.busy = False
                conn.requests += 1
                conn.last_active = time.monotonic()
        except ConnectionError:
            return
        except Stalled:
            self.counters.stalled_connections += 1
        finally:
            self.clients -= 1
            self._conns.discard(conn)
            if not conn.closing:
                conn.closing = True
                await close_with(writer)

    def _make_room(self) -> bool:
        """At the connection cap: close an idle connection for a new one, if there is one."""
        victim = pick_victim(self._conns)
        if victim is None:
            return False
        self._conns.discard(victim)
        victim.closing = True
        self.counters.evicted_connections += 1
        task = asyncio.ensure_future(close_with(victim.writer, line(error(
            None, "evicted", "closed: idle while the agent is at its connection limit; "
                             "connect again when you have a request"))))
        self._closing.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._closing.discard)
        return True

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        if writer.transport.get_write_buffer_size() > _HIGH_WATER:
            try:  # a peer that sends requests but never reads the answers is not kept
                await asyncio.wait_for(writer.drain(), SEND_TIMEOUT_S)
            except TimeoutError:
                raise Stalled from None

    async def _handle(
        self, raw: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        conn: Conn,
    ) -> bytes | None:
        """One request's answer line (None: the connection was a subscription, now over)."""
        req: Any = None
        op: Any = None
        try:
            msg = parse(raw)
            req = msg.get("req")
            op = msg.get("op")
            if op == "emit":
                reply = await self._emit(req, msg)
            elif op == "subscribe":
                await self._subscribe(req, reader, writer, conn)
                return None
            elif op == "ping":
                reply = {"req": req, "ok": True, "time": time.time()}
            elif op == "status":
                reply = {"req": req, "ok": True, "status": self.status()}
            else:
                handler = self.ops.get(op) if isinstance(op, str) else None
                if handler is None:
                    known = ", ".join(["emit", "status", "subscribe", "ping", *self.ops])
                    raise Refused("unknown-op", "bus-protocol",
                                   f"unknown op {short(op)}; use one of: {known}")
                try:
                    reply = {"req": req, "ok": True, **await asyncio.to_thread(handler, msg)}
                except AgentError as exc:
                    raise Refused(f"{op}:{exc.reason.value}", exc.reason.value,
                                   str(exc)) from None
            return line(reply)
        except Refused as exc:
            self.counters.refused_requests[exc.key] += 1
            return line(error(req, exc.reason, str(exc)))
        except (ConnectionError, Stalled):
            raise
        except Exception as exc:  # a bug met by a request: answered, counted, the bus goes on
            self.counters.refused_requests["internal-error"] += 1
            log.warning("bus request %s failed: %s: %s", short(op), type(exc).__name__,
                        short(str(exc), 200))
            log.debug("bus request failure", exc_info=True)
            return line(error(req, "internal-error",
                               f"the agent could not answer this request "
                               f"({type(exc).__name__}); it goes on running"))

    async def _emit(self, req: Any, msg: dict[str, Any]) -> dict[str, Any]:
        raw = msg.get("events")
        if not isinstance(raw, list) or not raw:
            raise Refused("no-events", "invalid-event", '"events" must be a non-empty list')
        if len(raw) > MAX_EVENTS_PER_REQUEST:
            raise Refused("too-many-events", "invalid-event",
                           f"at most {MAX_EVENTS_PER_REQUEST} events per request")
        check_events(raw, self._types, self.counters)
        now = time.time()
        pending: list[PendingEvent] = []
        kept: list[int] = []  # positions of the events not withheld
        for i, ev in enumerate(raw):
            etype: str = ev["type"]
            data = ev.get("data")
            if self.allow is not None and not self.allow(etype, data):
                continue
            if self.enrich is not None:
                data = self.enrich(etype, data)
            try:
                pending.append(make_pending(etype, data, now, ev.get("priority")))
            except AgentError as exc:
                self.counters.refused_events["invalid"] += 1
                raise Refused("invalid-event", "invalid-event", f"event {i}: {exc}") from None
            kept.append(i)
        try:
            committed = await asyncio.wrap_future(self.writer.submit(pending)) if pending else []
        except AgentError as exc:
            return error(req, exc.reason.value, str(exc))
        ids: list[str | None] = [None] * len(raw)
        seqs: list[int | None] = [None] * len(raw)
        for i, c in zip(kept, committed, strict=True):
            ids[i], seqs[i] = c.id, c.seq
        reply: dict[str, Any] = {"req": req, "ok": True, "ids": ids, "seqs": seqs}
        if len(kept) < len(raw):
            reply["withheld"] = len(raw) - len(kept)
        return reply

    async def _subscribe(
        self, req: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        conn: Conn,
    ) -> None:
        sub = Subscriber(writer)
        conn.subscriber = True
        self._subscribers.add(sub)
        closed = asyncio.ensure_future(until_eof(reader))  # the client went away
        try:
            await self._send(writer, line({"req": req, "ok": True}))
            while True:
                if sub.ended:
                    return
                if sub.lagged:
                    conn.closing = True
                    await close_with(writer, LAGGED)
                    return
                if not sub.lines:
                    waiter = asyncio.ensure_future(sub.wake.wait())
                    done, _ = await asyncio.wait({waiter, closed},
                                                 return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    if closed in done:
                        return
                    continue
                writer.write(sub.take())
                if writer.transport.get_write_buffer_size() <= _HIGH_WATER:
                    continue
                drain = asyncio.ensure_future(writer.drain())
                lag = asyncio.ensure_future(sub.lag.wait())
                done, _ = await asyncio.wait({drain, lag, closed}, timeout=SEND_TIMEOUT_S,
                                             return_when=asyncio.FIRST_COMPLETED)
                lag.cancel()
                if drain not in done:
                    drain.cancel()
                elif drain.exception() is not None:
                    return  # the peer is gone
                if closed in done:
                    return
                if not done:
                    raise Stalled
        finally:
            closed.cancel()
            self._subscribers.discard(sub)
