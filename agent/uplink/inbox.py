"""Downstream messages, handed over from paho's read to the agent's handlers.

paho's read (on the event loop: link.py, pump.py) must stay free to go on reading PUBACKs and
sending PINGREQs: a document applied inside it (a SQLite snapshot, a 32 MiB content file hashed
and installed, a live config waiting for its trial) holds every acknowledgement and can cost
the connection its keepalive. So on_message only `offer()`s the message to this inbox and
returns. The loop hands each message to the agent's
handler, one at a time per lane (a document kind), so versions of one kind apply in order while
a slow content install does not hold the orders behind it.

The inbox is bounded in bytes and in messages, both counted while a message waits and while
it is handled. Past the bound a message is dropped, counted by reason; a retained one (every
document; blobs too) is asked for again by subscribing to its topic anew once the inbox has
drained, so nothing is lost, only delayed. A dropped command (not retained) is gone: the sender
gets no answer and asks again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

log = logging.getLogger(__name__)

# two of the largest messages (a content blob, 32 MiB) may wait or be handled at once, plus
# room for the documents beside them; past it paho's memory for the next one is freed at once
MAX_INBOX_BYTES: Final = 80 * 1024 * 1024
# messages, whatever their size: each costs a loop callback and a little bookkeeping
MAX_INBOX_MESSAGES: Final = 1024


@dataclass(frozen=True, slots=True)
class Downstream:
    topic: str
    payload: bytes
    response_topic: str  # MQTT 5 request/response: where a command's answer goes
    correlation: bytes
    retained: bool


# the agent's side: handles one message (on the loop; the slow part goes to a worker)
Handler = Callable[[str, bytes, str, bytes], Awaitable[object]]


def lane_of(topic: str) -> str:
    """Messages of one lane are handled one at a time, in order of arrival: a document kind
    (content files belong to the content bundles that wait for them; commands share one)."""
    parts = topic.split("/")
    kind = parts[-2] if len(parts) >= 2 and parts[-2] in ("cmd", "blob") else parts[-1]
    return "content" if kind == "blob" else kind


class Inbox:
    def __init__(self, handler: Handler, resubscribe: Callable[[set[str]], None],
                 max_bytes: int = MAX_INBOX_BYTES,
                 max_messages: int = MAX_INBOX_MESSAGES) -> None:
        """`resubscribe(topics)`: subscribe anew (on the loop) so the broker sends again the
        retained messages dropped here."""
        self.handler = handler
        self.resubscribe = resubscribe
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        self.dropped: Counter[str] = Counter()
        self._lock = threading.Lock()  # offer() may come from any thread; status() too
        self._bytes = 0
        self._count = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lanes: dict[str, deque[Downstream]] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._lost: set[str] = set()  # retained topics dropped: asked for again when drained

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # --- paho's read (any thread) ---------------------------------------------------------

    def offer(self, msg: Downstream) -> bool:
        """Take the message or drop it (counted); never waits. Any thread."""
        size = len(msg.payload) + len(msg.topic)
        loop = self._loop
        with self._lock:
            if loop is None or loop.is_closed():
                reason = "not-running"
            elif self._count >= self.max_messages:
                reason = "inbox-full-messages"
            elif self._count and self._bytes + size > self.max_bytes:
                # an empty inbox takes any one message (paho's packet cap bounds it): one
                # larger than the bound would otherwise be dropped and asked for forever
                reason = "inbox-full-bytes"
            else:
                reason = ""
                self._bytes += size
                self._count += 1
            if reason:
                self.dropped[reason] += 1
                if msg.retained:
                    self._lost.add(msg.topic)
        if reason:
            log.warning("downstream message on %s (%d bytes) dropped: %s%s", msg.topic[:200],
                        size, reason, "; asked for again once the inbox has drained"
                        if msg.retained else "")
            return False
        assert loop is not None
        try:
            loop.call_soon_threadsafe(self._arrived, msg)
        except RuntimeError:  # the loop closed in between: shutting down
            self._done(size)
            return False
        return True

    # --- event loop -----------------------------------------------------------------------

    def _arrived(self, msg: Downstream) -> None:
        lane = lane_of(msg.topic)
        self._lanes.setdefault(lane, deque()).append(msg)
        if lane not in self._running:
            self._running[lane] = asyncio.get_running_loop().create_task(self._run(lane))

    async def _run(self, lane: str) -> None:
        queue = self._lanes[lane]
        try:
            while queue:
                msg = queue.popleft()
                try:
                    await self.handler(msg.topic, msg.payload, msg.response_topic,
                                       msg.correlation)
                except Exception:  # a fault of ours: the next message still gets its turn
                    log.exception("downstream message on %s not handled", msg.topic[:200])
                finally:
                    self._done(len(msg.payload) + len(msg.topic))
        finally:
            del self._running[lane]
        self._ask_again()

    def _done(self, size: int) -> None:
        with self._lock:
            self._bytes -= size
            self._count -= 1

    def _ask_again(self) -> None:
        with self._lock:
            if self._count or not self._lost:
                return
            lost, self._lost = self._lost, set()
        log.info("asking again for %d retained downstream message(s) dropped while the "
                 "inbox was full", len(lost))
        self.resubscribe(lost)

    async def close(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"queued": self._count, "queued_bytes": self._bytes,
                    "dropped": dict(self.dropped)}
