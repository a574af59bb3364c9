"""The tills' HTTP server with a deadline on every request's head: a client that opens a
connection and sends its request line and headers a byte at a time (slowloris), or sends
nothing at all, holds one of the device's few sockets and file descriptors for as long as it
likes under aiohttp's own timers (its keep-alive close comes after an hour). Here a
connection must bring a whole request head within `head_timeout_s` of opening, and the next
one within as long of the previous answer, or it is aborted and counted. A kept-alive
connection that merely sits idle after an answer is closed at the same deadline, uncounted:
that is a till's HTTP library, not an attack.

Built on aiohttp's low-level `web.Server` (its connection hooks are its public interface to a
server's connections); the endpoint routes by path itself, so no Application is needed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)


class _Connection(RequestHandler):
    """A connection that knows whether part of a request has come since the last head."""

    started = False  # a request head has come whole on it
    partial = False  # bytes have come since the last answer

    def data_received(self, data: bytes) -> None:
        if data:
            self.partial = True
        super().data_received(data)


class HeadTimeoutServer(web.Server):
    def __init__(self, handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
                 head_timeout_s: float, client_max_size: int,
                 on_timeout: Callable[[], None], **kwargs: Any) -> None:
        self.head_timeout_s = head_timeout_s
        self.client_max_size = client_max_size
        self.on_timeout = on_timeout
        self._timers: dict[RequestHandler, asyncio.TimerHandle] = {}
        self._handler_kwargs = kwargs
        super().__init__(self._timed(handler), request_factory=self._request, **kwargs)

    def __call__(self) -> RequestHandler:
        return _Connection(self, loop=asyncio.get_running_loop(), **self._handler_kwargs)

    # --- the deadline, armed when a connection opens and after each answer ----------------

    def _arm(self, handler: RequestHandler) -> None:
        self._disarm(handler)
        loop = asyncio.get_running_loop()
        self._timers[handler] = loop.call_later(self.head_timeout_s, self._expired, handler)

    def _disarm(self, handler: RequestHandler) -> None:
        timer = self._timers.pop(handler, None)
        if timer is not None:
            timer.cancel()

    def _expired(self, handler: RequestHandler) -> None:
        self._timers.pop(handler, None)
        transport = handler.transport
        if transport is None or transport.is_closing():
            return
        if isinstance(handler, _Connection) and handler.started and not handler.partial:
            transport.close()  # kept alive and idle: nothing to count
            return
        self.on_timeout()
        peer = transport.get_extra_info("peername")
        log.info("a POS client at %s sent no whole request within %.0f s: dropped",
                 peer[0] if isinstance(peer, tuple) else "?", self.head_timeout_s)
        transport.abort()  # nothing owed to it: no response, no lingering close

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._arm(handler)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None,
                        ) -> None:
        self._disarm(handler)
        super().connection_lost(handler, exc)

    # --- a request: its head is in (the factory runs then) until its answer is made --------

    def _request(self, message: Any, payload: Any, protocol: RequestHandler, writer: Any,
                 task: asyncio.Task[None]) -> web.BaseRequest:
        self._disarm(protocol)
        if isinstance(protocol, _Connection):
            protocol.started = True
        return web.BaseRequest(message, payload, protocol, writer, task,
                               asyncio.get_running_loop(), client_max_size=self.client_max_size)

    def _timed(self, handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
               ) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            try:
                return await handler(request)
            finally:
                protocol = request.protocol
                if isinstance(protocol, _Connection):
                    protocol.partial = False  # its body is in: what comes next is new
                if protocol is not None and protocol.transport is not None:
                    self._arm(protocol)  # for the next request on a kept-alive connection

        return handle
