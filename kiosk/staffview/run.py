"""Running the staff view: the hub, the server on every configured address (TLS when a
certificate is configured), until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from pathlib import Path
from typing import Final

from aiohttp import web

from kiosk.staffview.auth import Sessions
from kiosk.staffview.hub import Hub
from kiosk.staffview.server import StaffView, tls_context
from kiosk.staffview.settings import StaffViewSettings

log = logging.getLogger("o2o-edge.staff-view")

SHUTDOWN_S: Final = 2.0  # a stop waits this long for requests under way (systemd waits 90 s)


class ServeError(Exception):
    """The view cannot start (a port taken, an unreadable certificate): what to fix."""


def _hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


async def serve(view: StaffViewSettings, socket: Path,
                ready: asyncio.Event | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        ctx: ssl.SSLContext | None = tls_context(view.tls_cert, view.tls_key) \
            if view.tls else None
    except (OSError, ssl.SSLError) as exc:
        raise ServeError(f"[staff_view] tls_cert/tls_key: cannot load ({exc})") from None
    hub = Hub(socket, view.bus_token)
    sessions = Sessions(view.staff, view.devices, view.session_min * 60)
    server = StaffView(hub, sessions, view.rate_per_s, tls=ctx is not None)
    runner = web.AppRunner(server.app, access_log=None, handle_signals=False,
                           shutdown_timeout=SHUTDOWN_S)
    await runner.setup()
    try:
        for where in view.listen:
            host, port = _hostport(where)
            try:
                await web.TCPSite(runner, host, port, ssl_context=ctx,
                                  backlog=64, reuse_address=True).start()
            except OSError as exc:
                raise ServeError(f"[staff_view] listen {where}: {exc.strerror or exc}") \
                    from None
            log.info("staff view on %s://%s", "https" if ctx else "http", where)
        hub.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        hub.close_pages()  # the open event streams end; their pages reconnect to the next us
        await hub.stop()
        await runner.cleanup()
