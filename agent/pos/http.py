"""The tills' endpoint on the store's LAN: HTTP with a bearer token per till.

HTTP because every POS integration already speaks it (the payment terminal, the loyalty and
the e-commerce back ends are all HTTP+JSON calls from the till); a local MQTT listener would
ask the till's vendor for a client library and a broker per store. aiohttp: asyncio-native,
on the agent's loop, already installed (the staff view and textual-serve use it).

  POST /v1/pos/sale | /v1/pos/refund | /v1/offers/check | /v1/offers/redeem
  Authorization: Bearer <the till's token>       (only its SHA-256 is configured)

Off unless [pos] enabled; bound only to [pos] listen. A body over [pos] max_body_bytes is
refused before it is read (413); each till may make [pos] rate_per_min requests a minute
(429 with Retry-After); a client whose token fails is slowed the same way per address, so
tokens cannot be guessed at speed. A client that does not send a whole request head within
HEAD_TIMEOUT_S of connecting (or of its last answer), or its body within as long after the
head, is dropped and counted (server.py): slowloris clients cannot hold the device's
sockets. Tokens are compared in constant time (every configured digest, always). Every
refusal is JSON: {"ok": false, "reason": ..., "errors": [{"field", "error"}]}. An answer
is sent once the events it records are committed to the outbox.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web

from agent.config_schema import PosConfig
from agent.errors import AgentError, ConfigError
from agent.pos.server import HeadTimeoutServer
from agent.pos.service import Answer, PosService

log = logging.getLogger(__name__)

ROUTES: Final = {"/v1/pos/sale": "sale", "/v1/pos/refund": "refund",
                 "/v1/offers/check": "offer-check", "/v1/offers/redeem": "offer-redeem"}
COMMIT_TIMEOUT_S: Final = 10.0  # the outbox commits within ~50 ms; this is a stuck disk
AUTH_FAILURES_PER_MIN: Final = 10  # per client address: a till with a wrong token, or a guesser
MAX_ADDRESSES: Final = 1024  # client addresses remembered for their failures
# a till on the store's LAN sends a request's head and its few KiB of body in milliseconds;
# ten seconds covers a congested Wi-Fi and frees a slowloris client's socket soon
HEAD_TIMEOUT_S: Final = 10.0


def parse_tokens(entries: list[str]) -> list[tuple[str, bytes]]:
    """[pos] tokens ("NAME=SHA256HEX") as (name, digest)."""
    out = []
    for entry in entries:
        name, _, digest = entry.partition("=")
        out.append((name, bytes.fromhex(digest)))
    return out


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Bucket:
    """A token bucket: `rate` a minute, bursts of `burst`."""

    def __init__(self, rate_per_min: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self.clock = rate_per_min / 60.0, burst, clock
        self.level, self.at = burst, clock()

    def wait(self) -> float:
        """0 if a request would be allowed now, else the seconds until it would be."""
        now = self.clock()
        self.level = min(self.burst, self.level + (now - self.at) * self.rate)
        self.at = now
        return 0.0 if self.level >= 1 else (1 - self.level) / self.rate

    def take(self) -> float:
        """As wait(), and an allowed request is counted."""
        wait = self.wait()
        if wait == 0:
            self.level -= 1
        return wait


def _json(status: int, body: dict[str, Any], **headers: str) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json",
                        headers=headers)


def _refuse(status: int, reason: str, error: str, field: str = "",
            **headers: str) -> web.Response:
    return _json(status, {"ok": False, "reason": reason,
                          "errors": [{"field": field, "error": error}]}, **headers)


class PosEndpoint:
    def __init__(self, cfg: PosConfig, service: PosService,
                 clock: Callable[[], float] = time.monotonic,
                 head_timeout_s: float = HEAD_TIMEOUT_S) -> None:
        self.cfg = cfg
        self.head_timeout_s = head_timeout_s
        self.service = service
        self.clock = clock
        self.tokens = parse_tokens(cfg.tokens)
        self.buckets = {name: Bucket(cfg.rate_per_min, max(1, cfg.rate_per_min / 10), clock)
                        for name, _ in self.tokens}
        self.failures: dict[str, Bucket] = {}
        # slow_clients: dropped for a request head or body not sent within head_timeout_s
        self.counts = {"requests": 0, "unauthorized": 0, "limited": 0, "too_large": 0,
                       "slow_clients": 0}
        self.bound: list[tuple[str, int]] = []
        self._runner: web.ServerRunner | None = None

    def till(self, request: web.BaseRequest) -> str | None:
        """The till whose token the request carries, or None; constant time in the token."""
        kind, _, token = request.headers.get("Authorization", "").partition(" ")
        presented = hashlib.sha256(token.strip().encode("utf-8", "replace")).digest()
        found = None
        for name, digest in self.tokens:  # all of them, always: no early exit to time
            if hmac.compare_digest(presented, digest) and kind.lower() == "bearer":
                found = name
        return found

    def _failed(self, address: str) -> float:
        bucket = self.failures.get(address)
        if bucket is None:
            if len(self.failures) >= MAX_ADDRESSES:
                self.failures.pop(next(iter(self.failures)))
            bucket = self.failures[address] = Bucket(AUTH_FAILURES_PER_MIN, 5, self.clock)
        return bucket.take()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.counts["requests"] += 1
        action = ROUTES.get(request.path)
        if action is None:
            return _refuse(404, "not-found", f"no such endpoint; POST to one of "
                           f"{', '.join(ROUTES)}", "path")
        if request.method != "POST":
            return _refuse(405, "method-not-allowed", "use POST", "method", Allow="POST")
        address = request.remote or "?"
        failed = self.failures.get(address)
        if failed is not None and failed.wait() > 0:
            self.counts["limited"] += 1  # still paying for earlier failures
            return _refuse(429, "rate-limited", "too many failed sign-ins from this address; "
                           "wait a minute and check the till's token", "Authorization",
                           **{"Retry-After": "60"})
        till = self.till(request)
        if till is None:
            self.counts["unauthorized"] += 1
            self._failed(address)
            return _refuse(401, "unauthorized", "send 'Authorization: Bearer <token>' with the "
                           "till's token (its SHA-256 is in [pos] tokens)", "Authorization",
                           **{"WWW-Authenticate": 'Bearer realm="o2o-edge pos"'})
        wait = self.buckets[till].take()
        if wait > 0:
            self.counts["limited"] += 1
            return _refuse(429, "rate-limited", f"more than {self.cfg.rate_per_min} requests a "
                           "minute from this till; retry later", "",
                           **{"Retry-After": str(max(1, round(wait)))})
        if (request.content_length or 0) > self.cfg.max_body_bytes:
            self.counts["too_large"] += 1
            return _refuse(413, "too-large", f"the body is over {self.cfg.max_body_bytes} bytes "
                           "([pos] max_body_bytes); split the receipt", "")
        try:
            async with asyncio.timeout(self.head_timeout_s):
                raw = await request.read()
        except TimeoutError:
            self.counts["slow_clients"] += 1
            slow = _refuse(408, "too-slow", f"the body did not come within "
                           f"{self.head_timeout_s:.0f} s; send it again", "")
            slow.force_close()  # the rest of its body must not be read as a next request
            return slow
        except web.HTTPRequestEntityTooLarge:  # chunked, without a length
            self.counts["too_large"] += 1
            return _refuse(413, "too-large", f"the body is over {self.cfg.max_body_bytes} bytes "
                           "([pos] max_body_bytes); split the receipt", "")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            return _refuse(400, "invalid-json", f"the body is not UTF-8 JSON ({str(exc)[:80]})")
        try:
            answer = self.service.handle(till, action, body)
        except (AgentError, sqlite3.Error, OSError) as exc:  # a full disk, a damaged store.db
            log.warning("a till's request could not be decided: %s", exc)
            return _refuse(503, "not-stored", "the agent cannot record this now; send the "
                           "same request again later (it is counted once)", "",
                           **{"Retry-After": "30"})
        return await self._answer(answer)

    async def _answer(self, answer: Answer) -> web.Response:
        if answer.commits:
            try:
                await asyncio.wait_for(asyncio.gather(
                    *(asyncio.wrap_future(f) for f in answer.commits)), COMMIT_TIMEOUT_S)
            except Exception as exc:  # the outbox refused or is stuck: the till tries again
                log.warning("a till's request was decided but not committed: %s", exc)
                return _refuse(503, "not-stored", "the agent could not store this yet; send "
                               "the same request again (it is counted once)", "",
                               **{"Retry-After": "5"})
        headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
        return _json(answer.status, answer.body, **headers)

    def _slow(self) -> None:
        self.counts["slow_clients"] += 1

    async def start(self) -> None:
        server = HeadTimeoutServer(self.handle, self.head_timeout_s, self.cfg.max_body_bytes,
                                   self._slow, access_log=None)
        self._runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        for entry in self.cfg.listen:
            host, _, port = entry.rpartition(":")
            try:
                await web.TCPSite(self._runner, host.strip("[]"), int(port),
                                  reuse_address=True).start()
            except OSError as exc:
                await self.stop()
                why = exc.strerror or str(exc)
                raise ConfigError(f"[pos] listen {entry!r}: cannot listen there ({why}); use "
                                  "an address of this device and a free port") from None
        # the ports bound (listen = "...:0" in tests)
        self.bound = [(str(a[0]), int(a[1])) for a in self._runner.addresses]
        log.info("POS endpoint on %s", ", ".join(f"{h}:{p}" for h, p in self.bound))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
