"""The staff view's web server: aiohttp (asyncio-native, already installed with textual-serve,
so no new dependency), server-sent events for the live alert list (one-way push over plain
HTTP: EventSource reconnects by itself, through any proxy, with no extra library on either
side), the page as static files.

Every API request needs a session, from wherever it comes; the sign-in page and its files
hold nothing. Only /healthz answers without one, and only to 127.0.0.1 / ::1. Actions are
POSTs with a JSON body, the session's CSRF token in X-CSRF-Token, and an Origin, if sent,
of this server: a page elsewhere cannot make a phone act. Every refusal is a status and one
line, and counted."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from agent.contracts.alerts import valid_by
from agent.contracts.bus import Op
from kiosk.errors import KioskError
from kiosk.staffview.auth import COOKIE, Session, Sessions
from kiosk.staffview.guard import SIGN_IN_BURST, SIGN_IN_RATE, Buckets, Refusals, is_loopback
from kiosk.staffview.hub import Hub

log = logging.getLogger("o2o-edge.staff-view")

WEB: Final = Path(__file__).resolve().parent / "web"
STATIC: Final = {"app.js": "text/javascript", "style.css": "text/css"}
MAX_BODY: Final = 4096  # a sign-in or an action is a few dozen bytes
HEARTBEAT_S: Final = 15.0  # an idle stream says it is alive (proxies, dead phones)
HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY", "Cache-Control": "no-store"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SESSION: Final = web.RequestKey("session", Session)


class Refused(Exception):
    def __init__(self, status: int, line: str, why: str) -> None:
        super().__init__(line)
        self.status, self.line, self.why = status, line, why


class StaffView:
    def __init__(self, hub: Hub, sessions: Sessions, rate_per_s: float, tls: bool) -> None:
        self.hub, self.sessions, self.tls = hub, sessions, tls
        self.requests = Buckets(rate_per_s, rate_per_s * 6)
        self.sign_ins = Buckets(SIGN_IN_RATE, SIGN_IN_BURST)
        self.refusals = Refusals()
        self.app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
        r = self.app.router
        r.add_get("/", self.page)
        r.add_get("/static/{name}", self.static)
        r.add_get("/healthz", self.healthz)
        r.add_get("/favicon.ico", self.no_icon)
        r.add_post("/api/login", self.login)
        r.add_post("/api/logout", self.logout)
        r.add_get("/api/session", self.session)
        r.add_get("/api/overview", self.overview)
        r.add_get("/api/events", self.events)
        r.add_post("/api/alerts/{id}/{action:ack|close}", self.alert_action)
        r.add_post("/api/queue/{order}/handover", self.handover)

    # --- the gate ----------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            wait = self.requests.take(request.remote or "?")
            if wait > 0:
                raise Refused(429, f"too many requests; wait {wait:.1f} s", "rate")
            if request.path.startswith("/api/") and request.path != "/api/login":
                request[SESSION] = self._session(request)
            if request.method == "POST":
                self._same_origin(request)
            response = await handler(request)
        except Refused as r:
            response = self._refuse(request, r)
        except web.HTTPException as exc:  # aiohttp's own: 404, 405, 413 (body too large)
            response = self._refuse(request, Refused(exc.status, exc.reason, "http"))
        for k, v in HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    def _refuse(self, request: web.Request, r: Refused) -> web.Response:
        self.refusals.add(r.status, r.why)
        log.info("staff view: %s %s from %s refused: %s %s", request.method, request.path,
                 request.remote, r.status, r.line)
        headers = {"WWW-Authenticate": 'Cookie realm="staff"'} if r.status == 401 else None
        return web.Response(status=r.status, text=r.line + "\n", headers=headers)

    def _session(self, request: web.Request) -> Session:
        s = self.sessions.get(request.cookies.get(COOKIE))
        if s is None:
            raise Refused(401, "sign in first (session missing or expired)", "no-session")
        if request.method == "POST" and request.path != "/api/logout" and \
                request.headers.get("X-CSRF-Token") != s.csrf:
            raise Refused(403, "stale page: reload it and try again", "csrf")
        return s

    def _same_origin(self, request: web.Request) -> None:
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            raise Refused(403, "actions come from this server's own page", "origin")
        if request.content_type != "application/json":
            raise Refused(415, "send JSON (Content-Type: application/json)", "type")

    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise Refused(400, "the body is not JSON", "json") from None
        if not isinstance(body, dict):
            raise Refused(400, "the body is not a JSON object", "json")
        return body

    # --- the page ----------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(WEB / "index.html", headers={"Content-Type": "text/html"})

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC:  # a fixed list: no path from the request reaches the disk
            raise Refused(404, "no such file", "not-found")
        return web.FileResponse(WEB / name, headers={"Content-Type": STATIC[name]})

    async def no_icon(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)  # browsers ask; a 404 would count as a refusal

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        if not is_loopback(request.remote):
            raise Refused(401, "sign in first (only this device may ask without)", "outside")
        return web.json_response({
            "agent_up": self.hub.agent_up, "refused": self.hub.refused,
            "sessions": len(self.sessions),
            "pages": self.hub.listeners, "refusals": dict(self.refusals.counts),
            **self.hub.counts})

    # --- signing in --------------------------------------------------------------------

    async def login(self, request: web.Request) -> web.StreamResponse:
        wait = self.sign_ins.take(request.remote or "?")
        if wait > 0:
            raise Refused(429, f"too many sign-ins from here; wait {wait:.0f} s", "sign-in-rate")
        body = await self._json(request)
        token, name, pin = body.get("token"), body.get("name"), body.get("pin")
        if isinstance(token, str) and token:
            outcome = self.sessions.token(token[:200])
        elif isinstance(name, str) and isinstance(pin, str):
            outcome = await self.sessions.pin(name.strip()[:40], pin[:12])
        else:
            raise Refused(400, "give a name and PIN, or a device token", "sign-in-form")
        if outcome.session is None:
            status = 423 if outcome.locked_s > 0 else 401
            raise Refused(status, outcome.problem, "locked" if status == 423 else "wrong-pin")
        s = outcome.session
        response = web.json_response({"who": s.who, "csrf": s.csrf})
        response.set_cookie(COOKIE, s.sid, httponly=True, samesite="Strict", secure=self.tls,
                            path="/", max_age=int(s.expires - self.sessions.clock()))
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        self.sessions.close(request[SESSION].sid)
        response = web.json_response({"who": None})
        response.del_cookie(COOKIE, path="/")
        return response

    async def session(self, request: web.Request) -> web.StreamResponse:
        s = request[SESSION]
        return web.json_response({"who": s.who, "csrf": s.csrf})

    # --- what staff see and do ---------------------------------------------------------

    async def overview(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({**await self.hub.overview(),
                                  "alerts": self.hub.alerts_message()})

    async def events(self, request: web.Request) -> web.StreamResponse:
        session = request[SESSION]
        q = self.hub.listen()
        if q is None:
            raise Refused(503, "too many pages open; close one", "pages")
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no"})
        try:
            await response.prepare(request)
            await response.write(b"retry: 1500\n\n" + _sse({
                "type": "hello", "agent": {"up": self.hub.agent_up,
                                           "refused": self.hub.refused},
                **self.hub.alerts_message()}))
            while True:
                try:
                    msg = await asyncio.wait_for(q.get(), HEARTBEAT_S)
                except TimeoutError:
                    if self.sessions.get(session.sid) is None:
                        break  # expired: the page reconnects, is refused, and signs in
                    await response.write(b": alive\n\n")
                    continue
                await response.write(_sse(msg))
                if msg.get("type") == "bye":
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.hub.unlisten(q)
        return response

    async def alert_action(self, request: web.Request) -> web.StreamResponse:
        session = request[SESSION]
        by = valid_by(session.who)
        if by is None:
            raise Refused(400, "this session's name cannot act on alerts", "by")
        try:
            reply = await self.hub.ack(request.match_info["id"][:64], by,
                                       close=request.match_info["action"] == "close")
        except KioskError as exc:
            raise Refused(503, str(exc), "agent") from None
        return web.json_response({k: reply.get(k) for k in ("outcome", "error", "alert")
                                  if k in reply})

    async def handover(self, request: web.Request) -> web.StreamResponse:
        try:
            reply = await self.hub.request({"op": Op.HANDOVER,
                                            "order": request.match_info["order"][:64]})
        except KioskError as exc:
            raise Refused(503, str(exc), "agent") from None
        return web.json_response({"result": reply.get("result")})


def _sse(msg: dict[str, Any]) -> bytes:
    # one data line: JSON has no raw newlines
    return b"data: " + json.dumps(msg, separators=(",", ":")).encode() + b"\n\n"


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx
