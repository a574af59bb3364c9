"""The bus's bounds and its book of refusals: what one local client may cost the agent.

Each bound is counted when it refuses something, and the counts are in `status` (`bus`), so
an operator sees a hostile or broken client instead of a slow agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from agent.contracts import bus as proto
from agent.contracts import events
from agent.contracts.status import BusStatus

# A subscriber's backlog, in bytes: a kiosk or `tail` that stops reading costs at most this
# (plus one write chunk in the socket buffer), then it is told "lagged" and dropped. Big enough
# for a whole commit group of ordinary events (~10,000 lines, what the old line cap allowed), so
# a burst does not drop a kiosk that reads; the lines are shared, so many stuck subscribers
# keep this once, plus a write chunk each.
SUBSCRIBER_BACKLOG_BYTES: Final = 4 * 1024 * 1024
WRITE_CHUNK_BYTES: Final = 256 * 1024  # what one write hands the socket before draining
# Connections served at once. systemd gives the agent 1,024 descriptors; the kiosk, the CLI
# and the agent's own files must always find one.
MAX_CONNECTIONS: Final = 128
# At the cap, a connection that has not sent a request for this long makes room for a new
# one (those that never sent one go first): long enough for a CLI that just connected.
IDLE_EVICT_S: Final = 5.0
# A peer that does not read its last answer (refused, evicted, lagged, stalled) is cut off
# after this, so it cannot keep a descriptor by not reading.
CLOSE_GRACE_S: Final = 5.0
# An answer the peer does not take within this is a stalled connection: closed.
SEND_TIMEOUT_S: Final = 30.0
# Distinct event types bus clients may introduce in one boot: each is a label of the metrics
# and the roll-ups for good (the agent's own types do not count).
MAX_BUS_TYPES: Final = 256
# The agent's own record (started, outbox, privacy erasure, signed documents): only the agent
# writes these; a local client must not forge them (agent/contracts/events.py).
RESERVED_PREFIXES: Final = events.RESERVED_PREFIXES


@dataclass
class BusCounters:
    """Refusals by reason, since the agent started."""

    refused_requests: Counter[str] = field(default_factory=Counter)
    refused_events: Counter[str] = field(default_factory=Counter)
    refused_connections: int = 0
    evicted_connections: int = 0
    lagged_subscribers: int = 0
    stalled_connections: int = 0

    def snapshot(self) -> BusStatus:
        """The refusal counts of the bus's part of the status document."""
        return {
            "refused_requests": dict(self.refused_requests),
            "refused_events": dict(self.refused_events),
            "refused_connections": self.refused_connections,
            "evicted_connections": self.evicted_connections,
            "lagged_subscribers": self.lagged_subscribers,
            "stalled_connections": self.stalled_connections,
        }


@dataclass(eq=False)
class Conn:
    """One served connection, as the connection cap sees it."""

    writer: asyncio.StreamWriter
    pid: int = 0  # the peer process (SO_PEERCRED), for the per-process cap
    last_active: float = field(default_factory=time.monotonic)
    requests: int = 0
    busy: bool = False  # a request is being answered
    subscriber: bool = False
    closing: bool = False

    def evictable(self, now: float) -> bool:
        return (not self.busy and not self.subscriber and not self.closing
                and now - self.last_active >= IDLE_EVICT_S)


def pick_victim(conns: set[Conn]) -> Conn | None:
    """The connection to close to make room: idle ones that never sent a request first
    (a flood of idle connections), then the longest idle."""
    now = time.monotonic()
    idle = [c for c in conns if c.evictable(now)]
    return min(idle, key=lambda c: (c.requests > 0, c.last_active)) if idle else None


def line(obj: Mapping[str, Any]) -> bytes:
    # ASCII escapes: whatever a client sent (lone surrogates included) comes back encodable
    return proto.encode(obj)


async def close_with(writer: asyncio.StreamWriter, last: bytes | None = None) -> None:
    """Say a last line (if any) and close; a peer that does not read it within
    CLOSE_GRACE_S is cut off."""
    with contextlib.suppress(Exception):
        if last is not None and not writer.is_closing():
            writer.write(last)
        writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), CLOSE_GRACE_S)
    except TimeoutError:
        writer.transport.abort()
    except Exception:  # noqa: S110 - the peer is gone: nothing left to tell it
        pass


class Subscriber:
    """A subscriber's backlog, bounded in bytes (the lines are shared between subscribers;
    the bound is what one slow reader may keep alive)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.lines: deque[bytes] = deque()
        self.nbytes = 0
        self.lagged = False
        self.ended = False  # the agent is stopping
        self.wake = asyncio.Event()  # lines to send, or lagged, or ended
        self.lag = asyncio.Event()  # interrupts a write that waits on a peer not reading

    def offer(self, lines: list[bytes]) -> bool:
        """Queue lines; False (and the backlog freed) when it would pass the bound."""
        add = sum(len(x) for x in lines)
        if self.nbytes + add > SUBSCRIBER_BACKLOG_BYTES:
            self.lagged = True
            self.lines.clear()
            self.nbytes = 0
            self.wake.set()
            self.lag.set()
            return False
        self.lines.extend(lines)
        self.nbytes += add
        self.wake.set()
        return True

    def take(self) -> bytes:
        """Up to WRITE_CHUNK_BYTES of whole lines (at least one)."""
        out: list[bytes] = []
        size = 0
        while self.lines and (not out or size + len(self.lines[0]) <= WRITE_CHUNK_BYTES):
            x = self.lines.popleft()
            out.append(x)
            size += len(x)
        self.nbytes -= size
        if not self.lines and not self.lagged and not self.ended:
            self.wake.clear()
        return b"".join(out)

    def end(self) -> None:
        self.ended = True
        self.wake.set()
        self.lag.set()
