"""A subscription's stream (committed events to one subscriber, bounded and never stalling
capture), and the socket file's start: the bus server's parts that stand alone."""

from __future__ import annotations

import asyncio
import socket
import stat
from pathlib import Path
from typing import Any, Final

from agent.bus.edge import LAGGED, Stalled
from agent.bus.limits import SEND_TIMEOUT_S, Conn, Subscriber, close_with
from agent.errors import AgentError, Reason

_HIGH_WATER: Final = 64 * 1024  # asyncio's default: above it a write waits for the peer


async def pump(sub: Subscriber, writer: asyncio.StreamWriter, conn: Conn,
               closed: asyncio.Future[Any]) -> None:
    """Write a subscriber's lines as they come until it lags, the agent stops or the peer
    goes (`closed`); Stalled when the peer stops reading."""
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


def remove_stale_socket(path: Path) -> None:
    """Remove a socket left by an agent that died; refuse one in use or not a socket."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise AgentError(
            Reason.BUS_UNAVAILABLE,
            f"{path} exists and is not a socket; remove it or set [bus] socket",
        )

    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # stale: left by an agent that died
    else:
        raise AgentError(
            Reason.BUS_UNAVAILABLE,
            f"another agent is already serving {path}; stop it first "
            "(o2o-edge status shows it)",
        )
    finally:
        probe.close()
