"""The Prometheus endpoint: a small HTTP server on the agent's event loop.

prometheus-client's own server kept a thread per connection with no read timeout: a client
that connected and sent nothing held a thread for ever (1,000 of them, 1,000 threads). Here
connections are coroutines on the agent's loop, never threads; each must send its request
head within a few seconds (one byte a minute does not keep it), the number open is capped,
and when the cap is reached the oldest connection still waiting for its request makes room,
so a scraper always gets in. The page is rendered on the loop, from the agent's status as it
is at that moment (the loop owns that state: no other thread reads it).

Every connection let go without an answer is counted by reason in
o2o_metrics_connections_refused_total.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import threading
from collections import Counter
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

log = logging.getLogger(__name__)

MAX_CONNECTIONS: Final = 16  # a scraper or two and a person with curl; each costs one fd
HEAD_TIMEOUT_S: Final = 5.0  # the whole request head, not each read: a trickle is cut off
WRITE_TIMEOUT_S: Final = 10.0  # a client that does not read its answer
MAX_HEAD_BYTES: Final = 8192  # a scrape request is a few hundred bytes
# the blank line that ends a head: CRLF as HTTP says, or bare LF as common servers accept
HEAD_END: Final = re.compile(rb"\r?\n\r?\n")
# after a 431 the rest of the oversized head is read and dropped before closing: closing with
# it unread makes the kernel reset the connection, and the client loses the answer
LINGER_S: Final = 2.0
LINGER_BYTES: Final = 1 << 20


class MetricsServer:
    """Serves `registry` at /metrics (and /) on an already bound socket. Create it on the
    event loop; shutdown() may be called from any thread, server_close() on the loop."""

    def __init__(self, registry: CollectorRegistry, sock: socket.socket,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.registry = registry
        self.refused: Counter[str] = Counter()
        self.scrapes = 0
        self._sock = sock
        self._loop = loop
        self._server: asyncio.Server | None = None
        # open connections in arrival order; True once the request head is in (busy)
        self._conns: dict[asyncio.StreamWriter, bool] = {}
        self._closed = asyncio.Event()
        self._task = loop.create_task(self._start())

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def connections(self) -> int:
        return len(self._conns)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, sock=self._sock,
                                                  limit=MAX_HEAD_BYTES)
        await self._closed.wait()
        await self._close_now()

    def _make_room(self) -> bool:
        """At the cap: drop the oldest connection that has not sent its request. False
        when every one is busy being answered (bounded by the write timeout)."""
        for writer, busy in self._conns.items():
            if not busy:
                self.refused["evicted"] += 1
                self._conns.pop(writer)
                writer.transport.abort()
                return True
        return False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._conns) >= MAX_CONNECTIONS and not self._make_room():
            self.refused["busy"] += 1
            writer.transport.abort()
            return
        self._conns[writer] = False
        try:
            await self._answer(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            if writer in self._conns:  # not one evicted above (counted there)
                self.refused["closed"] += 1
        except TimeoutError:
            self.refused["timeout"] += 1
        except asyncio.LimitOverrunError:
            self.refused["too-large"] += 1
            with contextlib.suppress(ConnectionError, TimeoutError):
                await self._reply(writer, 431, "request head too large\n")
            await self._linger(reader, writer)
        except Exception:  # a collector that fails: the scraper hears it, the agent goes on
            log.warning("metrics page not rendered", exc_info=True)
            self.refused["error"] += 1
            with contextlib.suppress(ConnectionError, TimeoutError):
                await self._reply(writer, 500, "the metrics could not be rendered; see the "
                                  "agent's log\n")
        finally:
            self._conns.pop(writer, None)
            writer.transport.abort()

    @staticmethod
    async def _read_head(reader: asyncio.StreamReader) -> bytes:
        """The request head up to its blank line (LimitOverrunError past MAX_HEAD_BYTES)."""
        buf = b""
        while (end := HEAD_END.search(buf)) is None:
            if len(buf) > MAX_HEAD_BYTES:
                raise asyncio.LimitOverrunError("request head too large", len(buf))
            chunk = await reader.read(MAX_HEAD_BYTES)
            if not chunk:
                raise asyncio.IncompleteReadError(buf, None)
            buf += chunk
        if end.start() > MAX_HEAD_BYTES:
            raise asyncio.LimitOverrunError("request head too large", end.start())
        return buf[:end.start()]

    async def _linger(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """After a refusal: say we are done (FIN), then drop what the client still sends,
        up to LINGER_BYTES or LINGER_S, until it closes (the answer is not lost to a reset).
        A courtesy: a new connection at the cap evicts it, and the agent stopping cuts it
        short (a cancelled handler task would be logged by asyncio's stream callback)."""
        if writer in self._conns:
            self._conns[writer] = False  # not busy: may make room for a scraper

        async def drop() -> None:
            if writer.can_write_eof():
                writer.write_eof()
            left = LINGER_BYTES
            while left > 0 and (chunk := await reader.read(65536)):
                left -= len(chunk)
        with contextlib.suppress(ConnectionError, TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(drop(), LINGER_S)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(self._read_head(reader), HEAD_TIMEOUT_S)
        if writer in self._conns:
            self._conns[writer] = True
        parts = head.split(b"\n", 1)[0].split()
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            self.refused["bad-request"] += 1
            await self._reply(writer, 400, "bad request\n")
            await self._linger(reader, writer)
            return
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            self.refused["bad-request"] += 1
            await self._reply(writer, 405, "only GET\n")
            await self._linger(reader, writer)
            return
        if target not in (b"/metrics", b"/"):
            self.refused["not-found"] += 1
            await self._reply(writer, 404, "not found: the metrics are at /metrics\n")
            await self._linger(reader, writer)
            return
        self.scrapes += 1
        body = generate_latest(self.registry)
        await self._reply(writer, 200, body, CONTENT_TYPE_LATEST, head_only=method == b"HEAD")

    async def _reply(self, writer: asyncio.StreamWriter, code: int, body: str | bytes,
                     content_type: str = "text/plain; charset=utf-8",
                     head_only: bool = False) -> None:
        data = body.encode() if isinstance(body, str) else body
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                  431: "Request Header Fields Too Large", 500: "Internal Server Error"}[code]
        writer.write(f"HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\n"
                     f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode())
        if not head_only:
            writer.write(data)
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)

    async def _close_now(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._conns):
            writer.transport.abort()
        self._conns.clear()
        self._sock.close()

    def shutdown(self) -> None:
        """Stop serving; from the loop's thread or any other (the daemon calls it from a
        worker thread and waits here until it is done)."""
        if self._loop.is_closed():
            self._sock.close()
            return
        done = threading.Event()

        def stop() -> None:
            self._closed.set()
            self._task.add_done_callback(lambda _t: done.set())

        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._closed.set()
            return
        self._loop.call_soon_threadsafe(stop)
        done.wait(5.0)

    def server_close(self) -> None:
        """Release the socket at once (after shutdown(), or instead of it on the loop)."""
        self._closed.set()
        if self._server is not None:  # stop listening first: a closed fd cannot be unwatched
            self._server.close()
        with contextlib.suppress(OSError):
            self._sock.close()


def bind(listen: str) -> socket.socket:
    """A listening socket for "host:port" ("[::1]:9464" for IPv6); OSError when taken."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, int(port)), family=family, backlog=64)
    sock.setblocking(False)
    return sock
