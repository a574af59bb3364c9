"""The kiosk's connection to the agent's local bus (Unix socket, JSON lines).

One connection subscribes to committed events (taps, scans, presence) and hands them to the
app; requests (check-in, emit) share a second one, kept open, so a slow answer never holds up
the event stream and a request costs no new connection. When the agent is down the link
says so (`on_state`), keeps the kiosk's own events in a bounded memory queue, and reconnects
by itself with backoff; what was queued is sent once the agent is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.retry import Backoff
from kiosk.errors import KioskError, KioskReason

REQUEST_TIMEOUT_S = 5.0
PENDING_LIMIT = 500  # kiosk events kept while the agent is down (oldest dropped first)
MAX_LINE = 1024 * 1024


class AgentLink:
    def __init__(self, socket: Path, on_event: Callable[[dict[str, Any]], None],
                 on_state: Callable[[bool, str], None],
                 backoff_min_s: float = 0.2, backoff_max_s: float = 5.0) -> None:
        self.socket = socket
        self.on_event = on_event
        self.on_state = on_state
        self.up = False
        self.reason = "connecting"
        self._backoff = Backoff(backoff_min_s, backoff_max_s)
        self._pending: deque[dict[str, Any]] = deque(maxlen=PENDING_LIMIT)
        self._req = itertools.count(1)
        self._flushing = asyncio.Lock()
        self._requesting = asyncio.Lock()
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.counts = {"events_in": 0, "emitted": 0, "queued_while_down": 0, "reconnects": 0}

    def _set(self, up: bool, reason: str) -> None:
        if (up, reason) != (self.up, self.reason):
            self.up, self.reason = up, reason
            self.on_state(up, reason)

    async def run(self) -> None:
        """Subscribe, forever: reconnects after the agent restarts or goes away."""
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.socket),
                                                                    limit=MAX_LINE)
            except OSError as exc:
                self._set(False, f"the agent is not reachable on {self.socket} "
                                 f"({exc.strerror or exc})")
                await asyncio.sleep(self._backoff.next_delay())
                continue
            try:
                writer.write(b'{"op":"subscribe","req":0}\n')
                await writer.drain()
                first = json.loads(await reader.readline() or b"{}")
                if not first.get("ok"):
                    raise ConnectionError(f"subscribe refused: {first}")
                self._backoff.reset()
                self.counts["reconnects"] += 1
                self._set(True, "connected")
                await self._flush()
                while line := await reader.readline():
                    msg = json.loads(line)
                    if isinstance(msg, dict) and isinstance(msg.get("event"), dict):
                        self.counts["events_in"] += 1
                        self.on_event(msg["event"])
                raise ConnectionError("the agent closed the connection")
            except (OSError, ConnectionError, ValueError) as exc:
                self._set(False, f"lost the agent ({exc})")
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            await asyncio.sleep(self._backoff.next_delay())

    async def request(self, obj: dict[str, Any]) -> dict[str, Any]:
        """One request and its reply over the request connection (opened when needed, kept
        for the next one); KioskError(AGENT_DOWN) if the agent cannot answer."""
        async with self._requesting:  # one request at a time on the shared connection
            try:
                if self._conn is None:
                    self._conn = await asyncio.wait_for(
                        asyncio.open_unix_connection(str(self.socket), limit=MAX_LINE),
                        REQUEST_TIMEOUT_S)
                reader, writer = self._conn
                writer.write(json.dumps({**obj, "req": next(self._req)}).encode() + b"\n")
                await writer.drain()
                line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT_S)
                if not line:
                    raise ConnectionError("the agent closed the connection")
                reply = json.loads(line)
            except (OSError, TimeoutError, ValueError) as exc:
                await self._drop()
                raise KioskError(KioskReason.AGENT_DOWN,
                                 f"the agent did not answer ({exc})") from None
        if not isinstance(reply, dict) or not reply.get("ok"):
            raise KioskError(KioskReason.AGENT_DOWN, f"the agent refused: {reply}")
        return reply

    async def _drop(self) -> None:
        if self._conn is not None:
            _, writer = self._conn
            self._conn = None
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def emit(self, event_type: str, data: dict[str, Any]) -> None:
        """Send a kiosk event; kept for later if the agent is down (never raises)."""
        event = {"type": event_type, "data": {**data, "kiosk_time": round(time.time(), 3)}}
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
                    await self.request({"op": "emit", "events": batch})
                except KioskError:
                    return  # still queued; sent after the next reconnect
                for ev in batch:  # the queue may have moved on meanwhile: remove what was sent
                    if self._pending and self._pending[0] is ev:
                        self._pending.popleft()
                self.counts["emitted"] += len(batch)

    @property
    def pending(self) -> int:
        return len(self._pending)
