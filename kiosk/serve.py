"""`o2o-edge kiosk --serve`: the kiosk served to the store's browser by textual-serve, one
kiosk process per websocket connection, with what a public screen on a network needs:

- the websocket (`/ws`) is opened only from the served page itself: a browser always sends
  the page's Origin, and any other page the browser opens (or any client on the LAN when
  served there) could otherwise drive the kiosk — answered 403, no kiosk process started.
  A client without an Origin is refused too: only a browser showing our page has business
  there (a test tool sets the header like a browser does);
- at most `[kiosk] serve_sessions` kiosks (or `--sessions`; default 2) run at once (each is
  a process of ~47 MiB; a store screen needs one, two while the page reloads): more are
  answered 503;
- the terminal size a client asks for is bounded (it is the kiosk's screen buffer);
- the kiosk's pictures and where they show pass to its page in checked shapes only, for the
  page to draw them as real pixels (kiosk/web_pictures.py);
- refusals are counted, logged (one line per reason at most every `LOG_EVERY_S`), shown with
  the sessions at `GET /status` (JSON) and reported to the agent as `o2o.kiosk.serve` events
  (at most one every `REPORT_EVERY_S`, with the refusals since the last one): they reach the
  outbox, upstream and the agent's metrics (o2o_events_committed by type).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import logging
import os
import signal
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server

from agent.contracts import events as ev
from agent.contracts.bus import EventIn, Op
from kiosk.errors import KioskError, KioskReason
from kiosk.link import AgentLink
from kiosk.safe_text import plain
from kiosk.web_pictures import page_message

log = logging.getLogger("o2o-edge.kiosk.serve")

LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD: Final = frozenset({"0.0.0.0", "::"})  # noqa: S104 — names, compared, not bound
COLS: Final = (20, 400)  # terminal columns a client may ask for: a 4K screen at a small font
ROWS: Final = (8, 200)  # rows likewise; the kiosk keeps a buffer of cols x rows cells
MAX_SESSIONS: Final = 16  # each session is a kiosk process of ~47 MiB; a Pi has 1-8 GiB
LOG_EVERY_S: Final = 10.0  # a refusal is logged at most this often per reason (then counted)
REPORT_EVERY_S: Final = 10.0  # refusals reach the agent at most this often, summed


class ServeError(KioskError):
    """`--serve` cannot start: the message says what to give instead."""

    def __init__(self, message: str) -> None:
        super().__init__(KioskReason.SERVE, message)


def parse_listen(where: str) -> tuple[str, int]:
    """"HOST:PORT" (IPv6 as "[::1]:8765"; port 0: any free port) -> (host, port)."""
    host, sep, port = where.rpartition(":")
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    example = "like 127.0.0.1:8765"
    if not sep or not host:
        raise ServeError(f"--serve {where!r}: give HOST:PORT, {example}")
    if not port.isascii() or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ServeError(f"--serve {where!r}: the port must be a number from 1 to 65535, "
                         f"{example}")
    if any(c.isspace() or c in "/@?#[]" for c in host):
        raise ServeError(f"--serve {where!r}: {host!r} is no host name or address, {example}")
    return host, int(port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def origin_allowed(origin: str | None, served_host: str, port: int,
                   host_header: str | None = None) -> bool:
    """The websocket's Origin is the page this server serves: http, our port, and our host
    name — a loopback name when served on loopback; when served on every interface, the
    address the browser used (an IP literal, so no DNS name can be rebound to us)."""
    if not origin:
        return False
    try:
        parts = urlsplit(origin)
        o_host, o_port = (parts.hostname or "").lower(), parts.port or 80
    except ValueError:
        return False
    # an Origin is scheme://host[:port] and nothing else: anything more is no browser's
    if parts.scheme != "http" or o_port != port or parts.path or parts.query \
            or parts.fragment or "@" in parts.netloc or origin.endswith(("?", "#")):
        return False
    served = served_host.lower()
    allowed = {served}
    if served in LOOPBACK or served in WILDCARD:
        allowed |= LOOPBACK
    if served in WILDCARD and host_header:
        try:
            h_host = (urlsplit(f"//{host_header}").hostname or "").lower()
        except ValueError:
            h_host = ""
        if h_host == o_host and _is_ip(h_host):
            allowed.add(h_host)
    return o_host in allowed


def _bounded(value: Any, limits: tuple[int, int], default: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        number = default
    return max(limits[0], min(limits[1], number))


class KioskServer(Server):
    """textual-serve's server with the origin check, the session cap and bounded sizes."""

    def __init__(self, command: str, host: str, port: int, max_sessions: int,
                 title: str, statics_path: Path, templates_path: Path,
                 agent_socket: Path | None = None, scale: float = 1.0) -> None:
        super().__init__(command, host=host, port=port, title=title,
                         statics_path=statics_path, templates_path=templates_path)
        self.scale = scale  # [kiosk] scale: the page's text size against its own choice
        self.max_sessions = max_sessions
        self.sessions = 0
        self.started = 0
        self.refused: Counter[str] = Counter()
        self.reported: Counter[str] = Counter()  # what the agent has been told of
        self._logged: dict[str, float] = {}
        self._sock: socket.socket | None = None
        self._link = AgentLink(agent_socket, lambda event: None, lambda up, why: None) \
            if agent_socket else None
        self._report: asyncio.Task[None] | None = None
        self._last_report = -REPORT_EVERY_S

    # --- listening ------------------------------------------------------------------------

    def bind(self) -> None:
        """Take the port now, so a taken port or an unknown host is one clear error before
        anything starts (and port 0 becomes the port the page and its websocket use)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        where = f"{self.host}:{self.port}"
        try:
            self._sock = socket.create_server((self.host, self.port), family=family)
        except OSError as exc:
            if (exc.errno or 0) < 0:  # a getaddrinfo error, re-raised by create_server
                raise ServeError(f"cannot listen on {where}: no such host name; give an "
                                 "address like 127.0.0.1:8765") from None
            hint = {errno.EADDRINUSE: "the port is taken (another kiosk serving?); give a "
                                      "free one with --serve HOST:PORT or [kiosk] serve",
                    errno.EACCES: "ports below 1024 need privileges; use one from 1024",
                    errno.EADDRNOTAVAIL: "this machine has no such address; use 127.0.0.1"}
            raise ServeError(f"cannot listen on {where} ({os.strerror(exc.errno or 0)}): "
                             + hint.get(exc.errno or 0, "give another --serve HOST:PORT")) \
                from None
        self.port = int(self._sock.getsockname()[1])
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.public_url = f"http://{shown}:{self.port}"

    def serve(self, debug: bool = False) -> None:
        """textual-serve's `serve`, on the socket `bind` took."""
        if self._sock is None:
            self.bind()
        self.debug = debug
        self.initialize_logging()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_exit)
        web.run_app(self._make_app(), sock=self._sock, handle_signals=False, loop=loop,
                    print=lambda *args: None)

    async def on_startup(self, app: web.Application) -> None:
        # one plain line (the package prints a banner): supervisors and tests read it
        print(f"o2o-edge kiosk: serving on {self.public_url}/ (at most {self.max_sessions} "
              "kiosk sessions at once)", flush=True)

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.router.add_get("/status", self.handle_status)
        aiohttp_jinja2.get_env(app).globals["kiosk_scale"] = repr(float(self.scale))
        return app

    # --- the websocket ------------------------------------------------------------------------

    def _refuse(self, reason: str, status: int, text: str) -> web.Response:
        self.refused[reason] += 1
        now = time.monotonic()
        if now - self._logged.get(reason, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged[reason] = now
            log.warning("kiosk websocket refused (%s, %d so far): %s", reason,
                        self.refused[reason], text)
        if self._link is not None and (self._report is None or self._report.done()):
            self._report = asyncio.create_task(self._report_refusals())
        return web.Response(status=status, text=text + "\n")

    async def _report_refusals(self) -> None:
        """The refusals since the last report, as one event for the agent's outbox; kept
        for the next report while the agent cannot take it."""
        assert self._link is not None
        while True:
            await asyncio.sleep(max(0.0, self._last_report + REPORT_EVERY_S
                                    - time.monotonic()))
            self._last_report = time.monotonic()
            new = self.refused - self.reported
            if not new:
                return
            event: EventIn = {"type": ev.KIOSK_SERVE, "data": ev.KioskServe(
                refused=dict(new), refused_total=dict(self.refused),
                sessions=self.sessions, max_sessions=self.max_sessions)}
            try:
                await self._link.request({"op": Op.EMIT, "events": [event]})
            except KioskError:
                continue  # the agent is away: tried again, with what comes meanwhile
            self.reported.update(new)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, self.host, self.port, request.host):
            # the client's Origin is data: shown plain and short in the answer and the log
            return self._refuse(  # type: ignore[return-value]
                "origin", 403,
                f"refused: this kiosk's websocket opens only from its own page "
                f"{self.public_url}/ (Origin {plain(origin, 100) or 'missing'})")
        if self.sessions >= self.max_sessions:
            return self._refuse(  # type: ignore[return-value]
                "sessions", 503,
                f"refused: {self.sessions} kiosk sessions are open, the most [kiosk] "
                f"serve_sessions allows; close one and reload")
        query = dict(request.query)
        query["width"] = str(_bounded(query.get("width"), COLS, 80))
        query["height"] = str(_bounded(query.get("height"), ROWS, 24))
        self.sessions += 1  # counted before the first await: no two can take the last slot
        self.started += 1
        try:
            return await super().handle_websocket(
                request.clone(rel_url=request.rel_url.with_query(query)))
        finally:
            self.sessions -= 1

    async def _process_messages(self, websocket: web.WebSocketResponse,
                                app_service: AppService) -> None:
        resize = app_service.set_terminal_size

        async def bounded_resize(width: Any, height: Any) -> None:
            await resize(_bounded(width, COLS, 80), _bounded(height, ROWS, 24))

        app_service.set_terminal_size = bounded_resize  # type: ignore[method-assign]
        # set before the first await here, so before the app's first packet is read
        on_meta = app_service.on_meta

        async def kiosk_meta(data: bytes) -> None:
            """The kiosk's pictures and their places go to its page (kiosk/web_pictures.py),
            in the shapes checked there; anything else is textual-serve's."""
            try:
                meta = json.loads(data)
            except ValueError:
                return
            message = page_message(meta)
            if message is not None:
                await app_service.remote_write_str(message)
            elif not (isinstance(meta, dict) and str(meta.get("type")).startswith("o2o_")):
                await on_meta(data)

        app_service.on_meta = kiosk_meta  # type: ignore[method-assign]
        await super()._process_messages(websocket, app_service)

    async def handle_status(self, request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(self.status()), content_type="application/json")

    def status(self) -> dict[str, Any]:
        return {"sessions": self.sessions, "max_sessions": self.max_sessions,
                "started": self.started, "refused": dict(self.refused),
                "reported_to_agent": dict(self.reported)}
