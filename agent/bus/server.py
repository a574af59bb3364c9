"""The local bus: a Unix socket speaking JSON lines, for the kiosk, the CLI and store systems.

The protocol — requests, answers, refusal reasons — is agent/contracts/bus.py; every request
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
  request first) is closed to make room, with {"reason": "evicted"}; when none is idle, a
  connection of the process holding the most is (agent/bus/fair.py); failing that the new one
  is answered {"reason": "busy"} and closed. One process holds at most
  MAX_CONNECTIONS_PER_PID: past it its own idle connection makes room, or it is told busy.
- Big request lines share a byte budget while parsed and waiting on the writer (fair.py); a
  big request that waits for it too long is answered {"reason": "busy"}: try again later.
  Lines over THREAD_LINE_BYTES are parsed in a worker thread, so the loop keeps answering.
- A store operation (checkin, handover, queue) that meets a full disk is answered
  {"reason": "disk-full"} saying what to do.
- The staff operations (alerts, alert-ack, alert-close) need the staff bus token
  (agent/bus/roles.py); without it they are answered {"reason": "forbidden"}.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agent.bus.edge import (
    Refused,
    Stalled,
    check_events,
    error,
    parse,
    parse_in_steps,
    short,
    until_eof,
)
from agent.bus.fair import (
    BUDGET_BYTES,
    MAX_CONNECTIONS_PER_PID,
    THREAD_LINE_BYTES,
    ByteBudget,
    crowd_victim,
    own_victim,
    peer_pid,
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
from agent.bus.reading import MAX_LINE, Cut, read_request
from agent.bus.roles import StaffGate
from agent.bus.stream import pump, remove_stale_socket
from agent.contracts.bus import CORE_OPS, Op
from agent.contracts.events import own_id
from agent.contracts.status import BusStatus, Status
from agent.diskfull import is_disk_full
from agent.envelope import PendingEvent, make_pending
from agent.errors import AgentError, Reason
from agent.outbox import Committed, OutboxWriter

log = logging.getLogger(__name__)

MAX_EVENTS_PER_REQUEST = 5000
SOCKET_MODE = 0o660
_HIGH_WATER = 64 * 1024  # asyncio's default: above it a write waits for the peer
_WARN_EVERY_S = 60.0  # one warning a minute per kind of failure (each one is counted)


class BusServer:
    def __init__(
        self, path: Path, writer: OutboxWriter,
        status: Callable[[], Status | Mapping[str, Any]],
        ops: Mapping[str, Callable[[dict[str, Any]], Mapping[str, Any]]] | None = None,
        enrich: Callable[[str, Any], Any] | None = None,
        allow: Callable[[str, Any], bool] | None = None,
        gate: StaffGate | None = None,
    ) -> None:
        """`ops`: further request handlers by op name (check-in for the kiosk); each takes the
        request and returns the reply's fields (its reply type of agent/contracts/bus.py), and
        runs in a worker thread."""
        self.path = path
        self.ops = ops or {}
        self.enrich = enrich  # adds campaign/visit to events on their way in
        self.allow = allow  # consent: False for an event that must not be reported
        self.gate = gate or StaffGate(())  # who may use the staff ops (none by default)
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
        self.budget = ByteBudget(BUDGET_BYTES)
        self._check_lock = threading.Lock()  # check_events/_types from worker threads
        self._warned: dict[str, float] = {}  # failure kind -> when last logged

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def status_part(self) -> BusStatus:
        """The bus's part of the status document."""
        part: BusStatus = {
            "socket": str(self.path), "clients": self.clients,
            "subscribers": len(self._subscribers), "requests": self.requests,
            "event_types": len(self._types), "budget_bytes": self.budget.used,
            "budget_peak_bytes": self.budget.peak}
        part.update(self.counters.snapshot())
        return part

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_socket(self.path)
        old = os.umask(0o117)  # the socket is born 0660, never briefly world-writable
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_LINE
            )
        finally:
            os.umask(old)
        os.chmod(self.path, SOCKET_MODE)

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
        conn = Conn(writer, pid=peer_pid(writer.get_extra_info("socket")))
        why = self._admit(conn)
        if why:
            self.counters.refused_connections += 1
            await close_with(writer, line(error(None, Reason.BUSY, why)))
            return
        self._conns.add(conn)
        self.clients += 1
        try:
            while True:
                try:
                    raw, cost = await read_request(reader, conn, self.budget)
                except Cut as exc:
                    self.counters.refused_requests[exc.key] += 1
                    conn.closing = True
                    await close_with(writer, line(error(None, exc.reason, str(exc))))
                    return
                if not raw.strip() or conn.closing:
                    self.budget.release(cost)
                    if raw and not conn.closing:
                        continue  # a blank line
                    return  # the end, or evicted mid-line: the rest of the line is not coming
                self.requests += 1
                conn.busy = True
                try:
                    answer = await self._handle(raw, reader, writer, conn)
                finally:
                    self.budget.release(cost)
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

    def _admit(self, conn: Conn) -> str:
        """Room for a new connection ("" when admitted), evicting to make it if need be."""
        if conn.pid and sum(c.pid == conn.pid for c in self._conns) >= MAX_CONNECTIONS_PER_PID:
            victim = own_victim(self._conns, conn.pid)
            if victim is None:
                return (f"process {conn.pid} already holds {MAX_CONNECTIONS_PER_PID} bus "
                        "connections, all busy; wait for their answers or close some")
            self._evict(victim)
        if len(self._conns) >= MAX_CONNECTIONS:
            victim = pick_victim(self._conns) or crowd_victim(self._conns, conn.pid)
            if victim is None:
                return (f"the agent already serves {MAX_CONNECTIONS} bus connections; "
                        "close idle ones (o2o-edge status shows them) and try again")
            self._evict(victim)
        return ""

    def _evict(self, victim: Conn) -> None:
        """Close a connection to make room for a new one (its request, if any, is lost to
        it: it was told, and may connect again)."""
        self._conns.discard(victim)
        victim.closing = True
        self.counters.evicted_connections += 1
        task = asyncio.ensure_future(close_with(victim.writer, line(error(
            None, Reason.EVICTED, "closed: idle while the agent is at its connection limit; "
                             "connect again when you have a request"))))
        self._closing.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._closing.discard)

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
        threaded = len(raw) > THREAD_LINE_BYTES
        try:
            msg = await asyncio.to_thread(parse_in_steps, raw) if threaded else parse(raw)
            req = msg.get("req")
            op = msg.get("op")
            if op == Op.EMIT:
                reply = await self._emit(req, msg, threaded)
            elif op == Op.SUBSCRIBE:
                await self._subscribe(req, reader, writer, conn)
                return None
            elif op == Op.PING:
                reply = {"req": req, "ok": True, "time": time.time()}
            elif op == Op.STATUS:
                reply = {"req": req, "ok": True, "status": self.status()}
            else:
                handler = self.ops.get(op) if isinstance(op, str) else None
                if handler is None:
                    known = ", ".join([*CORE_OPS, *self.ops])
                    raise Refused("unknown-op", Reason.BUS_PROTOCOL,
                                   f"unknown op {short(op)}; use one of: {known}")
                self.gate.check(op, msg)
                try:
                    reply = {"req": req, "ok": True, **await asyncio.to_thread(handler, msg)}
                except AgentError as exc:
                    raise Refused(f"{op}:{exc.reason.value}", exc.reason,
                                   str(exc)) from None
                except sqlite3.OperationalError as exc:
                    if not is_disk_full(exc):
                        raise
                    self._warn("disk-full", "bus request %s: the disk is full", short(op))
                    raise Refused(f"{op}:disk-full", Reason.DISK_FULL,
                                   "the store database's disk is full, so this was not "
                                   "recorded; free disk space on the device (o2o-edge doctor "
                                   "shows where), then try again") from None
            return line(reply)
        except Refused as exc:
            self.counters.refused_requests[exc.key] += 1
            return line(error(req, exc.reason, str(exc)))
        except (ConnectionError, Stalled):
            raise
        except Exception as exc:  # a bug met by a request: answered, counted, the bus goes on
            self.counters.refused_requests["internal-error"] += 1
            self._warn(type(exc).__name__, "bus request %s failed: %s: %s", short(op),
                       type(exc).__name__, short(str(exc), 200))
            log.debug("bus request failure", exc_info=True)
            return line(error(req, Reason.INTERNAL,
                               f"the agent could not answer this request "
                               f"({type(exc).__name__}); it goes on running"))

    def _warn(self, kind: str, fmt: str, *args: Any) -> None:
        """A warning, at most one a minute per kind: a client repeating a failing request
        must not flood the journal (every one is counted in status all the same)."""
        now = time.monotonic()
        if now - self._warned.get(kind, -_WARN_EVERY_S) >= _WARN_EVERY_S:
            self._warned[kind] = now
            log.warning(fmt + " (further ones this minute are counted in status, not logged)",
                        *args)

    async def _emit(self, req: Any, msg: dict[str, Any], threaded: bool) -> dict[str, Any]:
        raw = msg.get("events")
        if not isinstance(raw, list) or not raw:
            raise Refused("no-events", Reason.INVALID_EVENT, '"events" must be a non-empty list')
        if len(raw) > MAX_EVENTS_PER_REQUEST:
            raise Refused("too-many-events", Reason.INVALID_EVENT,
                           f"at most {MAX_EVENTS_PER_REQUEST} events per request")
        pending, kept = (await asyncio.to_thread(self._prepare, raw) if threaded
                         else self._prepare(raw))
        try:
            committed = await asyncio.wrap_future(self.writer.submit(pending)) if pending else []
        except AgentError as exc:
            return dict(error(req, exc.reason, str(exc)))
        ids: list[str | None] = [None] * len(raw)
        seqs: list[int | None] = [None] * len(raw)
        for i, c in zip(kept, committed, strict=True):
            ids[i], seqs[i] = c.id, c.seq
        reply: dict[str, Any] = {"req": req, "ok": True, "ids": ids, "seqs": seqs}
        if len(kept) < len(raw):
            reply["withheld"] = len(raw) - len(kept)
        return reply

    def _prepare(self, raw: list[Any]) -> tuple[list[PendingEvent], list[int]]:
        """An emit's events checked and rendered, and the positions of those not withheld
        (on the loop for a small request, in a worker thread for a big one)."""
        with self._check_lock:
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
                pending.append(make_pending(etype, data, now, ev.get("priority"),
                                            event_id=own_id(etype, data)))
            except AgentError as exc:
                with self._check_lock:
                    self.counters.refused_events["invalid"] += 1
                raise Refused("invalid-event", Reason.INVALID_EVENT, f"event {i}: {exc}") from None
            kept.append(i)
        return pending, kept

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
            await pump(sub, writer, conn, closed)
        finally:
            closed.cancel()
            self._subscribers.discard(sub)
