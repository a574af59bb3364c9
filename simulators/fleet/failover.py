"""A loopback TCP front for the cluster, as a retailer's load balancer (or DNS with several
addresses) is: a real agent has one broker URL, the relay connects each of its connections
to a node that answers, the next node first each time, and when that node dies the agent's
connection is closed with it, so the agent reconnects — and lands on a live node.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from simulators.brokers import free_port


class Failover:
    def __init__(self, targets: list[int], host: str = "127.0.0.1") -> None:
        self.host = host
        self.targets = targets
        self.port = free_port()
        self.connections: list[int] = []  # the node port of each relayed connection
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="failover",
                                        daemon=True)
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> Failover:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._relay, self.host, self.port)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = None
        for i in range(len(self.targets)):  # the next node first, then the others
            port = self.targets[(self._next + i) % len(self.targets)]
            with contextlib.suppress(OSError):
                upstream = await asyncio.open_connection(self.host, port)
                self.connections.append(port)
                break
        self._next += 1
        if upstream is None:
            writer.close()  # no node answers: a refused connection, as a dead broker gives
            return
        up_r, up_w = upstream
        try:
            await asyncio.gather(self._pump(reader, up_w), self._pump(up_r, writer))
        except asyncio.CancelledError:
            pass  # stop(): ended, not cancelled (asyncio's server logs a cancelled handler)
        finally:
            for w in (writer, up_w):
                w.close()

    @staticmethod
    async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        with contextlib.suppress(OSError):
            dst.close()  # one side gone: the other sees its connection end
