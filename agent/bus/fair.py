"""The bus's fairness: what many clients together may cost the agent, and who makes room.

- Bytes: request lines over SMALL_LINE_BYTES (big emits) take their size from a global budget
  while they are parsed, checked and waiting on the outbox writer; past it a big request waits
  (at most BUDGET_WAIT_S) and is then answered `busy`. Small lines (a kiosk's check-in, the
  CLI's status) never wait for it: they cannot be made slow by someone else's big emits.
- Peers: the kernel says which process is at the other end of a connection (SO_PEERCRED);
  one process may hold at most MAX_CONNECTIONS_PER_PID connections, and at the global cap a
  newcomer evicts a connection of the process holding the most, so no one local client can
  lock the kiosk or the CLI out.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import deque
from typing import Final

from agent.bus.limits import Conn

# Lines up to this size are small requests (a check-in, a status, an emit of a few events):
# they skip the byte budget. 128 connections x 4 KiB is the most they can hold together.
SMALL_LINE_BYTES: Final = 4 * 1024
# Lines over this are parsed and checked in a worker thread, value by value, so the event loop
# (pings, the kiosk's check-ins) goes on between values.
THREAD_LINE_BYTES: Final = 64 * 1024
# A parsed emit costs about 6x its line in Python objects until it is committed (measured:
# a 0.98 MB line of 5,000 events holds 5.2 MB once parsed, plus the rendered rows).
PARSED_PER_LINE_BYTE: Final = 6
# The budget for big requests in flight, in line bytes: 2 MiB of lines (~12 MiB parsed) is
# two maximal emits at once, which keeps the outbox writer busy (measured: 16 clients' 64 big
# emits took 14 s, against 17 s at 4 MiB and 20 s with no budget) without holding more.
BUDGET_BYTES: Final = 2 * 1024 * 1024
# A big request waits this long for the budget, then is answered `busy` (the CLI waits 30 s).
BUDGET_WAIT_S: Final = 10.0
# Connections one process may hold: the kiosk uses two (requests, subscription), the CLI one.
MAX_CONNECTIONS_PER_PID: Final = 16
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class ByteBudget:
    """Bytes handed out first come, first served; a request waits its turn, bounded."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, n: int, timeout: float) -> bool:
        """Take n bytes (at most the whole budget); False when they were not free in time."""
        n = min(n, self.limit)
        if not self._waiters and self.used + n <= self.limit:
            self._take(n)
            return True
        entry = (n, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(entry[1], timeout)
            return True
        except TimeoutError:
            return False
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)
                self._wake()  # the head may have been this one, blocking smaller ones behind

    def release(self, n: int) -> None:
        self.used -= min(n, self.limit)
        self._wake()

    def _take(self, n: int) -> None:
        self.used += n
        self.peak = max(self.peak, self.used)

    def _wake(self) -> None:
        while self._waiters:
            n, fut = self._waiters[0]
            if fut.done():  # timed out or cancelled: it took nothing
                self._waiters.popleft()
                continue
            if self.used + n > self.limit:
                return
            self._waiters.popleft()
            self._take(n)
            fut.set_result(None)


def peer_pid(sock: socket.socket | None) -> int:
    """The pid of the process at the other end of a Unix socket (0 when unknown)."""
    if sock is None:
        return 0
    try:
        pid, _uid, _gid = _UCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    except (OSError, AttributeError, struct.error):
        return 0
    return int(pid)


def crowd_victim(conns: set[Conn], newcomer: int) -> Conn | None:
    """At the global cap with nobody idle: a connection of the process holding the most,
    when it holds at least two more than the newcomer's process (so two crowds do not evict
    each other in turn). Its idle or subscribed connections go first, the oldest first."""
    by_pid: dict[int, list[Conn]] = {}
    for c in conns:
        if not c.closing:
            by_pid.setdefault(c.pid, []).append(c)
    if not by_pid:
        return None
    pid, mine = max(by_pid.items(), key=lambda kv: len(kv[1]))
    if pid == newcomer or len(mine) < len(by_pid.get(newcomer, [])) + 2:
        return None
    return min(mine, key=lambda c: (c.busy and not c.subscriber, c.last_active))


def own_victim(conns: set[Conn], pid: int) -> Conn | None:
    """A process at its own cap: its connection idle the longest makes room (a client that
    leaks connections keeps working, bounded); None when all are mid-request."""
    idle = [c for c in conns if c.pid == pid and not c.closing
            and (not c.busy or c.subscriber)]
    return min(idle, key=lambda c: (c.subscriber, c.last_active)) if idle else None
