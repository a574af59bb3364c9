"""A loopback TCP relay that can cut the network between the agent and its broker.

The agent connects to the relay, the relay to the broker. `cut()` behaves like a dead link,
not like a closed port: established connections stay open but nothing crosses them in
either direction (what was in flight is held, as a router's dead route would hold nothing
back either way), and new connections are accepted and then hear nothing. `restore()` lets
the held connections flow again. So the agent has to find out by itself — keepalive,
missing acknowledgements — exactly as it would behind a broken store router.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from simulators.brokers import free_port


class NetworkCut:
    def __init__(self, target_host: str, target_port: int, port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self._open = asyncio.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="netcut",
                                        daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> NetworkCut:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._open.set()
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    def cut(self) -> None:
        self._loop.call_soon_threadsafe(self._open.clear)

    def restore(self) -> None:
        self._loop.call_soon_threadsafe(self._open.set)

    @property
    def is_cut(self) -> bool:
        return not self._open.is_set()

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for w in list(self._writers):
                w.close()
            # relays still waiting for a restore (or a broker) end here, not when the
            # loop is collected: a pending task or an open loop then is a warning
            relays = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in relays:
                task.cancel()
            await asyncio.gather(*relays, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        await self._open.wait()  # a connection made during a cut hears nothing until restored
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()  # the broker itself is down: that is a refused connection
            self._writers.discard(writer)
            return
        self._writers.add(up_w)
        try:
            await asyncio.gather(self._pump(reader, up_w), self._pump(up_r, writer))
        finally:
            for w in (writer, up_w):
                w.close()
                self._writers.discard(w)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                data = await src.read(65536)
                if not data:
                    break
                await self._open.wait()  # held, not lost, while the link is down
                dst.write(data)
                await dst.drain()
        with contextlib.suppress(OSError):
            dst.close()
