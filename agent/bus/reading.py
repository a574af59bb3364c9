"""A request line read off a bus connection, its bytes held against the shared budget.

A connection's reader keeps at most ~2 x SMALL_LINE_BYTES of a line it has not been given
budget for (asyncio pauses reading past twice the reader's limit), so a hundred clients each
sending a 1 MB line cost the agent their first few KiB each; the rest waits in their socket
until the line's turn comes (fair.BUDGET_BYTES: a few big lines at once).
"""

from __future__ import annotations

import asyncio
from typing import Final

from agent.bus.fair import BUDGET_WAIT_S, SMALL_LINE_BYTES, ByteBudget
from agent.bus.limits import Conn
from agent.contracts import bus as proto
from agent.errors import AgentError, Reason

MAX_LINE: Final = proto.MAX_LINE
# A big line must arrive within this once it holds budget: a client that trickles one cannot
# keep the budget from the others.
BIG_LINE_READ_S: Final = 10.0


class Cut(AgentError):
    """The connection ends with this answer: counted under `key`, told `reason`."""

    def __init__(self, key: str, reason: Reason, message: str) -> None:
        super().__init__(reason, message)
        self.key = key


def _set_limit(reader: asyncio.StreamReader, limit: int) -> None:
    # the reader's line limit is also its buffer bound (it pauses reading past twice it);
    # asyncio has no public setter, and the attribute has been there since 3.4
    reader._limit = limit  # type: ignore[attr-defined]


async def read_request(reader: asyncio.StreamReader, conn: Conn,
                       budget: ByteBudget) -> tuple[bytes, int]:
    """The next request line (b"" at the end, a partial line if the peer stopped mid-line)
    and the budget bytes it holds, 0 for a small line; the caller releases them."""
    _set_limit(reader, SMALL_LINE_BYTES)
    try:
        return await reader.readuntil(b"\n"), 0
    except asyncio.IncompleteReadError as exc:
        return exc.partial, 0
    except asyncio.LimitOverrunError:
        pass  # a big line: it is left in the buffer, read once it has budget
    conn.busy = True  # a request on its way: not idle, not to be evicted
    if not await budget.acquire(MAX_LINE, BUDGET_WAIT_S):
        raise Cut("busy", Reason.BUSY, "the agent is busy with other clients' big requests; this "
                  "connection is closed: connect again in a few seconds, or send fewer "
                  "events per request")
    _set_limit(reader, MAX_LINE)
    try:
        raw = await asyncio.wait_for(reader.readuntil(b"\n"), BIG_LINE_READ_S)
    except asyncio.IncompleteReadError as exc:
        raw = exc.partial
    except asyncio.LimitOverrunError:
        budget.release(MAX_LINE)
        raise Cut("line-too-long", Reason.BUS_PROTOCOL,
                  f"request line longer than {MAX_LINE} bytes; the connection is closed") from None
    except TimeoutError:
        budget.release(MAX_LINE)
        raise Cut("slow-line", Reason.BUS_PROTOCOL,
                  f"a request line took over {BIG_LINE_READ_S:.0f} s to arrive; the "
                  "connection is closed") from None
    except BaseException:
        budget.release(MAX_LINE)
        raise
    budget.release(MAX_LINE - len(raw))
    return raw, len(raw)
