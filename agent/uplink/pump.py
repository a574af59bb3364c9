"""Drives one connected paho client from the asyncio loop: no network thread (as aiomqtt does).

The socket is watched with `loop.add_reader` / `add_writer`; paho's keepalive work
(`loop_misc`: PINGREQ, the broker's silence) runs on a timer. paho's callbacks (on_connect,
on_publish, on_message, on_disconnect) are therefore called on the loop, from inside
`loop_read`; the socket callbacks tell this pump when paho has something to write and when
it closes the socket.

Reading is done in slices: each readiness callback reads at most READ_SLICE_BYTES (the
client's `read_budget`) and, if that was not all, asks for another turn with `call_soon`, so
a 32 MiB content file arrives over many short turns of the loop instead of one long one. A
TLS socket can hold decrypted bytes the selector does not see (`pending()`), and the client
bytes it read ahead (`buffered()`): they get a turn too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from typing import Any, Final

from agent.uplink.client import BoundedClient

# bytes read per turn of the loop: read straight into the message's buffer (client.py), 4 MiB
# cost 1-3 ms of the loop's time here. Fewer, larger turns read a large message sooner when
# worker threads contend for the GIL (each turn may wait for it): the PUBACKs behind the
# message on the same connection waited ~100 ms instead of ~140-170 ms with 1 MiB turns
READ_SLICE_BYTES: Final = 4 * 1024 * 1024
MISC_EVERY_S: Final = 1.0  # paho's loop() looks at the keepalive at least this often


class Pump:
    """One paho client's socket on one loop. `closed` is set when paho closes the socket
    (the broker went away, the keepalive failed, or a DISCONNECT was written)."""

    def __init__(self, client: BoundedClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.closed = asyncio.Event()
        self._ident = threading.get_ident()  # made on the loop's thread
        self._sock: Any = None
        self._writer = False
        self._misc: asyncio.TimerHandle | None = None
        self._again: asyncio.Handle | None = None
        client.on_socket_close = self._socket_closed
        client.on_socket_register_write = self._want_write
        client.on_socket_unregister_write = self._written

    def _on_loop(self) -> bool:
        return threading.get_ident() == self._ident

    def attach(self) -> None:
        """The client has just connected (its CONNECT queued): watch its socket."""
        sock = self.client.socket()
        if sock is None:
            self.closed.set()
            return
        self._sock = sock
        self.closed.clear()
        self.loop.add_reader(sock, self._readable)
        # CONNECT was queued during connect(), off the loop, before this pump watched the
        # socket (and paho, having asked once, will not ask again until all is written)
        self._writable()
        if self.client.want_write():
            self._add_writer(sock)
        self._misc = self.loop.call_later(MISC_EVERY_S, self._keepalive)

    def detach(self) -> None:
        """Stop watching (the socket is closed or about to be)."""
        sock, self._sock = self._sock, None
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None
        if self._again is not None:
            self._again.cancel()
            self._again = None
        if sock is not None:
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(sock)
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_writer(sock)
        self._writer = False

    # --- paho's socket callbacks --------------------------------------------------------

    def _socket_closed(self, client: Any, userdata: Any, sock: Any) -> None:
        # paho calls this before it closes the socket: the selector must let go first
        if sock is not self._sock:
            return  # a socket of an earlier attempt, dropped off the loop by reconnect()
        if self._on_loop():
            self.detach()
            self.closed.set()
        else:
            self.loop.call_soon_threadsafe(self._closed_elsewhere, sock)

    def _closed_elsewhere(self, sock: Any) -> None:
        if sock is self._sock:
            self.detach()
            self.closed.set()

    def _want_write(self, client: Any, userdata: Any, sock: Any) -> None:
        # a publish from another thread (or connect() in its worker) asks from there
        if self._on_loop():
            self._add_writer(sock)
        else:
            self.loop.call_soon_threadsafe(self._add_writer, sock)

    def _add_writer(self, sock: Any) -> None:
        if sock is self._sock and not self._writer:
            self._writer = True
            self.loop.add_writer(sock, self._writable)

    def _written(self, client: Any, userdata: Any, sock: Any) -> None:
        if self._on_loop():
            self._remove_writer(sock)
        else:
            self.loop.call_soon_threadsafe(self._remove_writer, sock)

    def _remove_writer(self, sock: Any) -> None:
        if self._writer and sock is self._sock:
            self._writer = False
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_writer(sock)
            if self.client.want_write():  # written to meanwhile, from elsewhere
                self._add_writer(sock)

    # --- the loop's callbacks ----------------------------------------------------------

    def _readable(self) -> None:
        self._again = None
        sock = self._sock
        if sock is None:
            return
        client = self.client
        client.read_budget = READ_SLICE_BYTES
        client.read_more = False
        client.loop_read()
        if self._sock is not sock:
            return  # closed while reading
        more = client.read_more or client.buffered()
        if not more and isinstance(sock, ssl.SSLSocket):
            with contextlib.suppress(OSError, ValueError):
                more = sock.pending() > 0
        if more and self._again is None:
            self._again = self.loop.call_soon(self._readable)

    def _writable(self) -> None:
        if self._sock is not None:
            # its `finally` tells paho's register/unregister callbacks what is left to write
            self.client.loop_write()

    def _keepalive(self) -> None:
        self._misc = None
        if self._sock is None:
            return
        self.client.loop_misc()
        if self._sock is not None:
            self._misc = self.loop.call_later(MISC_EVERY_S, self._keepalive)
