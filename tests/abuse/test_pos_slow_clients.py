"""The tills' endpoint against slow clients, in process over real sockets: a client that
trickles its request head (slowloris), one that connects and sends nothing, and one that
sends its head but not its body are each dropped after the head timeout and counted, while
a till's kept-alive connection that merely idles after its answer is closed uncounted and a
till posting meanwhile is served."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from agent.cli.commands import _pos_lines
from tests.abuse.test_pos_endpoint import SALE, endpoint, raw, request

TIMEOUT_S = 0.5  # the endpoint's head timeout here (10 s in the agent)


async def closed_after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       trickle: bytes = b"") -> float:
    """Seconds until the server closes the connection, sending `trickle` a byte at a time
    every 0.1 s meanwhile (a slowloris head never ends: its bytes cycle)."""
    started = time.monotonic()
    i = 0
    while True:
        if trickle:
            writer.write(trickle[i % len(trickle):i % len(trickle) + 1])
            i += 1
        try:
            data = await asyncio.wait_for(reader.read(1024), 0.1)
        except TimeoutError:
            assert time.monotonic() - started < 10, "the slow client was never dropped"
            continue
        except ConnectionResetError:
            data = b""
        if not data:
            writer.close()
            return time.monotonic() - started
        raise AssertionError(f"the server answered a head it never had: {data[:60]!r}")


def test_slow_clients_are_dropped_after_the_head_timeout_and_counted(tmp_path: Path) -> None:
    async def run() -> None:
        ep, events = endpoint(tmp_path)
        ep.head_timeout_s = TIMEOUT_S
        await ep.start()
        port = ep.bound[0][1]
        try:
            # slowloris: a head that keeps coming, a byte at a time, never whole
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"POST /v1/pos/sale HTTP/1.1\r\nHost: x\r\n")
            took = await closed_after(r, w, trickle=b"X-Pad: aaaaaaaa\r\n")
            assert TIMEOUT_S * 0.9 <= took < TIMEOUT_S + 3
            assert ep.counts["slow_clients"] == 1
            # a connection that sends nothing at all
            r, w = await asyncio.open_connection("127.0.0.1", port)
            assert await closed_after(r, w) < TIMEOUT_S + 3
            assert ep.counts["slow_clients"] == 2
            # a whole head, then only part of the body: told, then closed
            body = json.dumps(SALE).encode()
            got, answer, head = await raw(port, request(body)[:-10])
            assert (got, answer["reason"]) == (408, "too-slow")
            assert "connection: close" in head.lower()
            assert ep.counts["slow_clients"] == 3
            # a till that keeps its connection open after a sale: closed when idle, uncounted
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(request(body).replace(b"Connection: close\r\n", b""))
            answer_head = await r.readuntil(b"\r\n\r\n")
            assert b" 200 " in answer_head.split(b"\r\n")[0]
            length = next(int(x.split(b":")[1]) for x in answer_head.split(b"\r\n")
                          if x.lower().startswith(b"content-length:"))
            await r.readexactly(length)
            assert await closed_after(r, w) < TIMEOUT_S + 3
            assert ep.counts["slow_clients"] == 3
            # slow clients hold nothing up: a till posting beside one is served
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"POST /v1/pos/sale HTTP/1.1\r\n")
            got, answer, _ = await raw(port, request(json.dumps(
                {**SALE, "receipt": "R-2"}).encode()))
            assert got == 200 and answer["receipt"] == "R-2"
            await closed_after(r, w)
            assert ep.counts["slow_clients"] == 4
            assert [t for t, _ in events] == ["o2o.pos.sale", "o2o.pos.sale"]
            # where staff see it: the status document's pos section and `o2o-edge status`
            st = ep.service.status(ep)
            assert st["sales"] == 2 and st["endpoint"]["slow_clients"] == 4
            assert st["endpoint"]["listening"] == [f"127.0.0.1:{port}"]
            lines = _pos_lines({"pos": st})  # type: ignore[typeddict-item]
            assert lines[0].startswith("tills      sales=2 refunds=0")
            assert "too slow=4" in lines[1] and f"127.0.0.1:{port}" in lines[1]
        finally:
            await ep.stop()

    asyncio.run(run())
