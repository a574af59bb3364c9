"""The staff view's server against a stand-in agent: what it refuses (and says, and counts),
signing in and the lock-out, CSRF and origin checks, an alert raised reaching an open page's
stream, and an acknowledgement reaching the agent with the staff member's name."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from kiosk.pin import MAX_TRIES, hash_pin
from kiosk.staffview.auth import Sessions, new_token
from kiosk.staffview.hub import Hub
from kiosk.staffview.server import StaffView
from tests.unit.staffview.fakebus import FakeAgent

PIN = "4821"
TOKEN, TOKEN_HASH = new_token()
STAFF = {"Anna": hash_pin(PIN)}
BUS_TOKEN = "staff-bus-token-of-this-test-0123456789"

Body = Callable[[TestClient[Any, Any], FakeAgent, StaffView], Awaitable[None]]


def run(tmp_path: Path, body: Body, rate: float = 1000.0) -> None:
    async def main() -> None:
        agent = FakeAgent(tmp_path / "agent.sock")
        await agent.start()
        hub = Hub(agent.path, BUS_TOKEN)
        view = StaffView(hub, Sessions(STAFF, {"handheld": TOKEN_HASH}, 600,
                                       tries_dir=tmp_path), rate, tls=False)
        hub.start()
        client = TestClient(TestServer(view.app, host="127.0.0.1"))
        await client.start_server()
        try:
            await asyncio.wait_for(agent.subscribed.wait(), 10)
            await body(client, agent, view)
        finally:
            await client.close()
            await hub.stop()
            await agent.stop()

    asyncio.run(main())


async def sign_in(client: TestClient[Any, Any], pin: str = PIN) -> dict[str, Any]:
    r = await client.post("/api/login", json={"name": "Anna", "pin": pin})
    assert r.status == 200, await r.text()
    return dict(await r.json())


def test_every_api_request_needs_a_session_and_each_refusal_is_one_counted_line(
        tmp_path: Path) -> None:
    async def body(client: TestClient[Any, Any], agent: FakeAgent, view: StaffView) -> None:
        for path in ("/api/overview", "/api/events", "/api/session"):
            r = await client.get(path)
            assert r.status == 401
            text = await r.text()
            assert text.count("\n") == 1 and "sign in" in text
        r = await client.post("/api/alerts/X/ack", json={})
        assert r.status == 401
        health = await (await client.get("/healthz")).json()  # from 127.0.0.1: allowed
        assert health["refusals"] == {"401 no-session": 4}
        assert not any(q["op"] == "alert-ack" for q in agent.requests)

    run(tmp_path, body)


def test_a_signed_in_cookie_is_http_only_and_strict(tmp_path: Path) -> None:
    async def body(client: TestClient[Any, Any], agent: FakeAgent, view: StaffView) -> None:
        r = await client.post("/api/login", json={"name": "Anna", "pin": PIN})
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert (await client.get("/api/session")).status == 200

    run(tmp_path, body)


def test_wrong_pins_lock_the_name_out_even_for_the_right_pin(tmp_path: Path) -> None:
    async def body(client: TestClient[Any, Any], agent: FakeAgent, view: StaffView) -> None:
        view.sign_ins.burst = view.sign_ins.rate = 100  # the lock-out, not the rate limit
        statuses = []
        for _ in range(MAX_TRIES):
            r = await client.post("/api/login", json={"name": "Anna", "pin": "0000"})
            statuses.append(r.status)
        assert statuses == [401] * (MAX_TRIES - 1) + [423]
        r = await client.post("/api/login", json={"name": "Anna", "pin": PIN})
        assert r.status == 423
        assert "too many wrong PINs" in await r.text()

    run(tmp_path, body)


def test_a_device_token_signs_in_and_a_wrong_one_does_not(tmp_path: Path) -> None:
    async def body(client: TestClient[Any, Any], agent: FakeAgent, view: StaffView) -> None:
        r = await client.post("/api/login", json={"token": "nope"})
        assert r.status == 401
        r = await client.post("/api/login", json={"token": TOKEN})
        assert (await r.json())["who"] == "device:handheld"

    run(tmp_path, body)


def test_an_action_needs_the_csrf_token_json_and_this_origin(tmp_path: Path) -> None:
    async def body(client: TestClient[Any, Any], agent: FakeAgent, view: StaffView) -> None:
        agent.raise_alert("01ALERT")
        s = await sign_in(client)
        r = await client.post("/api/alerts/01ALERT/ack", json={})
        assert r.status == 403 and "reload" in await r.text()
        headers = {"X-CSRF-Token": s["csrf"]}
        r = await client.post("/api/alerts/01ALERT/ack", data="id=1", headers=headers)
        assert r.status == 415
        r = await client.post("/api/alerts/01ALERT/ack", json={},
                              headers={**headers, "Origin": "http://evil.example"})
        assert r.status == 403
        assert not any(q["op"] == "alert-ack" for q in agent.requests)
        r = await client.post("/api/alerts/01ALERT/ack", json={}, headers=headers)
        assert r.status == 200 and (await r.json())["outcome"] == "acknowledged"
        acks = [q for q in agent.requests if q["op"] == "alert-ack"]
        assert [(q["id"], q["by"]) for q in acks] == [("01ALERT", "Anna")]
        # the view speaks for staff to the agent with its bus token (agent/bus/roles.py)
        assert {q.get("token") for q in agent.requests if q["op"] in ("alerts", "alert-ack")} \
            == {BUS_TOKEN}

    run(tmp_path, body)


def test_too_large_a_body_and_too_many_requests_are_refused(tmp_path: Path) -> None:
    async def body(client: TestClient[Any, Any], agent: FakeAgent, view: StaffView) -> None:
        r = await client.post("/api/login", data=b"{" + b" " * 10_000 + b"}",
                              headers={"Content-Type": "application/json"})
        assert r.status == 413
        statuses = [(await client.get("/")).status for _ in range(40)]
        assert 429 in statuses
        health = await (await client.get("/healthz")).json() if statuses[-1] != 429 else None
        assert health is None or health["refusals"].get("429 rate")

    run(tmp_path, body, rate=2.0)


async def _stream(client: TestClient[Any, Any]) -> AsyncIterator[dict[str, Any]]:
    r = await client.get("/api/events")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/event-stream")
    async for raw in r.content:
        line = raw.decode().strip()
        if line.startswith("data: "):
            yield json.loads(line[6:])


def test_a_raised_alert_reaches_an_open_page_with_its_text_and_rings(tmp_path: Path) -> None:
    async def body(client: TestClient[Any, Any], agent: FakeAgent, view: StaffView) -> None:
        await sign_in(client)
        stream = _stream(client)
        hello = await asyncio.wait_for(anext(stream), 10)
        assert hello["type"] == "hello" and hello["alerts"] == []
        agent.raise_alert("01CALL", subject="Kiosk 2 at the entrance")
        while True:
            msg = await asyncio.wait_for(anext(stream), 10)
            if msg["type"] == "alerts":
                break
        assert msg["ring"] is True
        assert [(a["id"], a["subject"]) for a in msg["alerts"]] == [
            ("01CALL", "Kiosk 2 at the entrance")]
        await stream.aclose()

    run(tmp_path, body)


def test_the_overview_has_queue_numbers_and_health(tmp_path: Path) -> None:
    async def body(client: TestClient[Any, Any], agent: FakeAgent, view: StaffView) -> None:
        await sign_in(client)
        o = await (await client.get("/api/overview")).json()
        assert o["queue"]["queue"][0]["order_id"] == "A-1042"
        assert o["kpis"]["summary"]["checkins"] == 3
        assert {"name": "uplink", "state": "connected", "ok": True} in o["status"]["items"]

    run(tmp_path, body)


def test_an_agent_refusing_the_views_bus_token_is_said_not_shown_as_a_quiet_list(
        tmp_path: Path) -> None:
    async def body(client: TestClient[Any, Any], agent: FakeAgent, view: StaffView) -> None:
        await sign_in(client)
        stream = _stream(client)
        await asyncio.wait_for(anext(stream), 10)  # hello
        agent.token = "another-token-than-the-views-0123456"  # the agent holds another digest
        agent.raise_alert("01CALL")
        while True:
            msg = await asyncio.wait_for(anext(stream), 10)
            if msg["type"] == "agent":
                break
        assert msg["up"] is True and "staff tools" in msg["refused"]
        health = await (await client.get("/healthz")).json()
        assert "staff tools" in health["refused"]
        overview = await (await client.get("/api/overview")).json()
        assert "staff tools" in overview["agent"]["refused"]
        agent.token = BUS_TOKEN  # the digest put right: the list comes, the word goes
        agent.raise_alert("01CALL2")
        cleared = None
        while cleared is None:
            msg = await asyncio.wait_for(anext(stream), 10)
            if msg["type"] == "agent":
                cleared = msg
        assert cleared["refused"] == ""
        await stream.aclose()

    run(tmp_path, body)
