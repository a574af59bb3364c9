"""The tills' endpoint against careless and hostile clients, in process over real sockets:
each refusal is one JSON answer naming what to do, and the endpoint goes on serving.

Wrong methods and paths, no token or a wrong one (then the address is slowed), a till over
its rate, bodies over the cap with and without a length, bodies that are not JSON, nested
a hundred thousand deep, numbers past any float, lone surrogates and control characters in
fields; and a listen address the device does not have."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from agent.config_schema import PosConfig
from agent.pos import PosLedger, PosService
from agent.pos.http import PosEndpoint
from agent.storedb import StoreDatabase
from tests.conftest import CLI, ROOT

TOKEN = "abuse-till-token-0123456789abcdef"
SALE = {"receipt": "R-1", "total": 100, "currency": "EUR", "payment": "cash",
        "lines": [{"sku": "A", "qty": 1}]}


def endpoint(tmp_path: Path, rate: int = 600,
             clock: Callable[[], float] = time.monotonic) -> tuple[PosEndpoint, list[Any]]:
    events: list[Any] = []

    def capture(t: str, d: Any) -> Future[Any]:
        events.append((t, d))
        f: Future[Any] = Future()
        f.set_result([])
        return f

    service = PosService(PosLedger(StoreDatabase.open(tmp_path / "store.db")), "store-1",
                         lambda: [], lambda s: hashlib.sha256(s.encode()).hexdigest(), capture)
    cfg = PosConfig(enabled=True, listen=["127.0.0.1:0"], max_body_bytes=2048,
                    rate_per_min=rate,
                    tokens=[f"till-1={hashlib.sha256(TOKEN.encode()).hexdigest()}"])
    return PosEndpoint(cfg, service, clock=clock), events


async def raw(port: int, data: bytes) -> tuple[int, dict[str, Any], str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    body = await reader.readexactly(length)
    writer.close()
    return status, json.loads(body), head.decode("latin-1")


def request(body: bytes, token: str | None = TOKEN, method: str = "POST",
            path: str = "/v1/pos/sale", extra: str = "") -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n").encode() + body


def test_hostile_requests_are_refused_in_one_json_line_each(tmp_path: Path) -> None:
    async def run() -> None:
        ep, events = endpoint(tmp_path)
        await ep.start()
        port = ep.bound[0][1]
        try:
            ok = json.dumps(SALE).encode()
            cases = [
                (request(ok, method="GET"), 405, "method-not-allowed"),
                (request(ok, path="/v1/pos/../../etc/passwd"), 404, "not-found"),
                (request(b"{" * 100_000), 413, "too-large"),
                (request(b"[" * 1020 + b"]" * 1020), 400, "invalid-json"),
                (request(b"\xff\xfe{}"), 400, "invalid-json"),
                (request(b'{"receipt": "R-\\ud800", "total": 1e400}'), 422, "invalid-request"),
                (request(json.dumps({**SALE, "total": 10**30}).encode()), 422,
                 "invalid-request"),
                (request(json.dumps({**SALE, "receipt": "R-1\n"}).encode()), 422,
                 "invalid-request"),
                (request(json.dumps({**SALE, "loyalty": "\u202eLOY1"}).encode()), 422,
                 "invalid-request"),
                (request(ok, token="Bearer"), 401, "unauthorized"),
            ]
            for data, status, reason in cases:
                got, body, _ = await raw(port, data)
                assert (got, body["reason"]) == (status, reason), (data[:80], body)
                assert body["ok"] is False and body["errors"][0]["error"]
            # chunked: no length to refuse on, the cap still holds while reading
            chunk = b"x" * 4000
            got, body, _ = await raw(port, (
                "POST /v1/pos/sale HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                f"{TOKEN}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            ).encode() + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n")
            assert (got, body["reason"]) == (413, "too-large")
            # after all that, a good sale goes through
            got, body, _ = await raw(port, request(ok))
            assert got == 200 and body["receipt"] == "R-1"
            assert [t for t, _ in events] == ["o2o.pos.sale"]
            # a store.db that cannot be written (here: gone): 503, try again, no traceback
            ep.service.ledger._store.close()  # the one reference: the connection is closed
            got, body, head = await raw(port, request(json.dumps(
                {**SALE, "receipt": "R-2"}).encode()))
            assert (got, body["reason"]) == (503, "not-stored") and "Retry-After" in head
        finally:
            await ep.stop()

    asyncio.run(run())


def test_guessing_tokens_and_a_flooding_till_are_slowed(tmp_path: Path) -> None:
    async def run() -> None:
        now = [1000.0]
        ep, _ = endpoint(tmp_path, rate=30, clock=lambda: now[0])  # bursts of 3
        await ep.start()
        port = ep.bound[0][1]
        try:
            wrong = [(await raw(port, request(b"{}", token=f"guess-{i}")))[0] for i in range(8)]
            assert wrong == [401] * 5 + [429] * 3
            # the address that guessed waits, whatever token it sends next, and is told why
            got, body, head = await raw(port, request(b"{}"))
            assert got == 429 and "Retry-After" in head and "sign-ins" in body["errors"][0]["error"]
            # once a failure has worn off, the till that fixed its token is served, and its
            # good requests do not use up what is left of the failures' allowance
            now[0] += 6.5
            ok = [(await raw(port, request(json.dumps({**SALE, "receipt": f"G-{i}"}).encode()
                                           )))[0] for i in range(2)]
            assert ok == [200, 200]
            now[0] += 60
            ep.failures.clear()  # a till at another address: its own rate only
            statuses = [(await raw(port, request(json.dumps(
                {**SALE, "receipt": f"R-{i}"}).encode())))[0] for i in range(6)]
            assert statuses[:3] == [200] * 3 and statuses[3:] == [429] * 3
        finally:
            await ep.stop()

    asyncio.run(run())


def test_a_listen_address_the_device_lacks_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""
[device]
store = "store-1"
id = "dev-1"
[outbox]
path = "{tmp_path / 'outbox.db'}"
[mqtt]
url = ""
[bus]
socket = "{tmp_path / 'agent.sock'}"
[kiosk]
store_db = "{tmp_path / 'store.db'}"
[metrics]
listen = ""
[pos]
enabled = true
listen = ["203.0.113.7:8470"]
tokens = ["till-1={hashlib.sha256(TOKEN.encode()).hexdigest()}"]
""")
    res = subprocess.run([*CLI, "run", "--config", str(cfg)], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0, res.stderr
    assert "[pos] listen '203.0.113.7:8470': cannot listen there" in res.stderr
    none = tmp_path / "none.toml"
    none.write_text(cfg.read_text().replace('tokens = ["till-1=', 'x = ["'))
    res = subprocess.run([*CLI, "config", "check", "--config", str(none)], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 2 and "[pos]" in res.stderr
