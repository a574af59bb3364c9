"""The kiosk's connection to the agent's local bus (Unix socket, JSON lines).

One connection subscribes to committed events (taps, scans, presence) and hands them to the
app; requests (check-in, emit) share a second one, kept open, so a slow answer never holds up
the event stream and a request costs no new connection. When the agent is down the link
says so (`on_state`), keeps the kiosk's own events in a bounded memory queue, and reconnects
by itself with backoff; what was queued is sent once the agent is back.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agent.bus.client import AsyncBusClient
from agent.contracts.bus import BusRefusal, CloudEvent, EventIn, Op
from agent.contracts.status import Status, as_status
from agent.errors import AgentError
from drivers.retry import Backoff
from kiosk.errors import KioskError, KioskReason

REQUEST_TIMEOUT_S = 5.0
PENDING_LIMIT = 500  # kiosk events kept while the agent is down (oldest dropped first)


class AgentLink:
    def __init__(self, socket: Path, on_event: Callable[[CloudEvent], None],
                 on_state: Callable[[bool, str], None],
                 backoff_min_s: float = 0.2, backoff_max_s: float = 5.0) -> None:
        self.socket = socket
        self.on_event = on_event
        self.on_state = on_state
        self.up = False
        self.reason = "connecting"
        self._backoff = Backoff(backoff_min_s, backoff_max_s)
        self._pending: deque[EventIn] = deque(maxlen=PENDING_LIMIT)
        self._flushing = asyncio.Lock()
        self._requesting = asyncio.Lock()
        self._conn: AsyncBusClient | None = None
        self.counts = {"events_in": 0, "emitted": 0, "queued_while_down": 0, "reconnects": 0}

    def _set(self, up: bool, reason: str) -> None:
        if (up, reason) != (self.up, self.reason):
            self.up, self.reason = up, reason
            self.on_state(up, reason)

    async def run(self) -> None:
        """Subscribe, forever: reconnects after the agent restarts or goes away."""
        while True:
            try:
                stream = await AsyncBusClient.connect(self.socket, REQUEST_TIMEOUT_S)
            except AgentError as exc:
                cause = exc.__cause__
                self._set(False, f"the agent is not reachable on {self.socket} "
                                 f"({cause.strerror or cause})" if isinstance(cause, OSError)
                          else str(exc))
                await asyncio.sleep(self._backoff.next_delay())
                continue
            try:
                events = await stream.subscribe()
                self._backoff.reset()
                self.counts["reconnects"] += 1
                self._set(True, "connected")
                await self._flush()
                async for event in events:
                    self.counts["events_in"] += 1
                    self.on_event(event)
            except AgentError as exc:
                self._set(False, f"lost the agent ({exc})")
            finally:
                await stream.close()
            await asyncio.sleep(self._backoff.next_delay())

    async def request(self, obj: dict[str, Any]) -> dict[str, Any]:
        """One request and its reply over the request connection (opened when needed, kept
        for the next one); KioskError(AGENT_DOWN) if the agent cannot answer or refuses
        (AGENT_DOWN) or refuses (AGENT_REFUSED, caused by the agent's BusRefusal)."""
        async with self._requesting:  # one request at a time on the shared connection
            try:
                if self._conn is None:
                    self._conn = await AsyncBusClient.connect(self.socket, REQUEST_TIMEOUT_S)
                return await self._conn.request(obj)
            except BusRefusal as exc:  # the agent's own reason stays on the cause
                raise KioskError(KioskReason.AGENT_REFUSED, f"the agent refused: {exc}") \
                    from exc
            except AgentError as exc:  # the connection is gone or out of step: a new one
                await self._drop()
                # the system's own words for a failed connect (staff read them on the staff
                # screen), not the CLI's advice to start the agent
                cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
                raise KioskError(KioskReason.AGENT_DOWN,
                                 f"the agent did not answer ({cause})") from None

    async def status(self) -> Status:
        """The agent's status document (agent/contracts/status.py)."""
        reply = await self.request({"op": Op.STATUS})
        try:
            return as_status(reply.get("status"))
        except ValueError as exc:
            raise KioskError(KioskReason.AGENT_REFUSED, f"the agent's status: {exc}") from None

    async def _drop(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    async def emit(self, event_type: str, data: Mapping[str, Any]) -> None:
        """Send a kiosk event; kept for later if the agent is down (never raises)."""
        event: EventIn = {"type": event_type,
                          "data": {**data, "kiosk_time": round(time.time(), 3)}}
        self._pending.append(event)
        if self.up:
            await self._flush()
        else:
            self.counts["queued_while_down"] += 1

    async def _flush(self) -> None:
        async with self._flushing:
            while self._pending:
                batch = list(self._pending)
                try:
                    await self.request({"op": Op.EMIT, "events": batch})
                except KioskError:
                    return  # still queued; sent after the next reconnect
                for ev in batch:  # the queue may have moved on meanwhile: remove what was sent
                    if self._pending and self._pending[0] is ev:
                        self._pending.popleft()
                self.counts["emitted"] += len(batch)

    @property
    def pending(self) -> int:
        return len(self._pending)
