"""The staff view in a real headless Chromium at a phone's viewport (390x844), against the real
agent process and the staff view's own process: staff sign in with a PIN; a shopper's call for
staff from the kiosk (a headless kiosk app on the same agent) shows on the phone; "On my way"
there changes the kiosk's words to who is coming. A wrong PIN five times locks the name out; a
request from outside loopback without a session is refused; after the view restarts the page's
event stream comes back (the page asks staff to sign in again: sessions live in memory).
Screenshots at 390x844 and 768x1024 are kept under the test's tmp dir (the path is printed).
And the kiosk as stores run it, served to a browser of its own, with the phone in a second
browser: a tap on the kiosk's page reaches the phone, "On my way" there reaches the kiosk's
page — with the store's link to its broker up, and cut."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.contracts.alerts import token_digest
from kiosk.app import KioskApp
from kiosk.pin import MAX_TRIES, hash_pin
from kiosk.settings import load_settings
from simulators.brokers import PrivateBroker, PrivateMosquitto
from simulators.netcut import NetworkCut
from simulators.scenario.shopper import until
from tests.conftest import ROOT, AgentProcess, need, wait_for, write_config
from tests.integration.conftest import Subscriber, running_broker
from tests.integration.test_kiosk_flows import Store

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]
PIN, BEN_PIN = "4821", "7395"
PHONE = {"width": 390, "height": 844}
TABLET = {"width": 768, "height": 1024}
OUTSIDE = "127.0.0.2"  # loopback to the kernel, "the LAN" to the view bound to it
BUS_TOKEN = "staff-bus-token-of-the-e2e-tests"  # the view's; the agent holds its digest
# the agent's [staff] table (Store appends it to the configuration after [kiosk])
STAFF_TABLE = f'\n[staff]\nbus_tokens = ["{token_digest(BUS_TOKEN)}"]\n'


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _get(host: str, port: int, path: str, source: str | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection(host, port, timeout=10,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


class View:
    """`o2o-edge staff-view` as a child process."""

    def __init__(self, store: Store, tmp: Path) -> None:
        self.port, self.outside_port = _free_port(), _free_port(OUTSIDE)
        self.settings = tmp / "staff-view.toml"
        self.settings.write_text(
            "[staff_view]\nenabled = true\n"
            f'listen = ["127.0.0.1:{self.port}", "{OUTSIDE}:{self.outside_port}"]\n'
            f'bus_token = "{BUS_TOKEN}"\n'
            f'[staff_view.staff]\nAnna = "{hash_pin(PIN)}"\nBen = "{hash_pin(BEN_PIN)}"\n',
            encoding="utf-8")
        self.cmd = [sys.executable, "-m", "agent.cli.main", "staff-view", "--config",
                    str(store.cfg_path), "--settings", str(self.settings)]
        self.env = {**os.environ, "XDG_STATE_HOME": str(tmp / "state")}
        self.log = tmp / "staff-view.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"staff view exited: {self.log.read_text()[-2000:]}")
            try:
                status, body = _get("127.0.0.1", self.port, "/healthz")
            except OSError:
                return False
            return status == 200 and bool(json.loads(body)["agent_up"])

        wait_for(up, 30, what="staff view up, with the agent")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def health(self) -> dict[str, Any]:
        return dict(json.loads(_get("127.0.0.1", self.port, "/healthz")[1]))


def started_view(tmp_path: Path, agent_factory: list[AgentProcess],
                 staff_table: str = STAFF_TABLE) -> Iterator[View]:
    """The agent (its [staff] table `staff_table`) and the staff view, both running."""
    need("chromium", "chromium")
    pytest.importorskip("playwright", reason="pip install playwright (in the test extras)")
    store = Store(tmp_path, agent_factory, kiosk=staff_table)
    store.agent.start()
    v = View(store, tmp_path)
    v.start()
    v.store = store  # type: ignore[attr-defined]
    yield v
    v.stop()


@pytest.fixture
def view(tmp_path: Path, agent_factory: list[AgentProcess]) -> Iterator[View]:
    yield from started_view(tmp_path, agent_factory)


async def _sign_in(page: Any, name: str, pin: str) -> None:
    await page.fill("#name", name)
    await page.fill("#pin", pin)
    await page.click("#pin-form button[type=submit]")


def test_a_call_shows_on_the_phone_and_its_ack_reaches_the_kiosk(view: View,
                                                                  tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    chromium = need("chromium", "chromium")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nscreenshots of the staff view: {shots}")
    url = f"http://127.0.0.1:{view.port}/"

    async def run() -> None:
        kiosk = KioskApp(load_settings(str(view.store.cfg_path)))  # type: ignore[attr-defined]
        async with async_playwright() as p, kiosk.run_test(size=(100, 34)) as pilot:
            browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            # bypass_csp: the page forbids eval, which wait_for_function needs
            context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                                bypass_csp=True)
            phone = await context.new_page()
            await phone.goto(url)
            await phone.wait_for_selector("#pin-form", state="visible")
            await phone.screenshot(path=shots / "signin-390x844.png")
            await _sign_in(phone, "Anna", PIN)
            await phone.wait_for_selector("#work", state="visible")
            await phone.wait_for_function("window.staffView.streams >= 1")

            await until(pilot, lambda: kiosk.agent_up, what="kiosk linked to the agent")
            await pilot.click("#call-staff")
            await until(pilot, lambda: bool(kiosk.follow_text), what="the kiosk's answer")
            assert kiosk.follow_text == "We have let the team know."
            card = phone.locator("#alerts li[data-state=open]").first
            await card.wait_for(timeout=10_000)
            assert "asks for help" in (await card.inner_text())
            await phone.wait_for_function("window.staffView.rings >= 1")
            await phone.wait_for_selector("#queue-h")
            await phone.screenshot(path=shots / "alert-390x844.png", full_page=True)
            tablet = await context.new_page()  # the same cookie: signed in
            await tablet.set_viewport_size(TABLET)
            await tablet.goto(url)
            await tablet.wait_for_selector("#alerts li", timeout=10_000)
            await tablet.screenshot(path=shots / "alert-768x1024.png", full_page=True)
            await tablet.close()

            await card.locator("button.ack").click()
            await phone.wait_for_selector("#alerts li[data-state=acknowledged]",
                                          timeout=10_000)
            await until(pilot, lambda: "Anna" in kiosk.follow_text, what="who is coming")
            assert kiosk.follow_text == "Anna from our team is coming."
            await phone.screenshot(path=shots / "acknowledged-390x844.png", full_page=True)

            # a pickup check-in: the queue shows the order with its waiting time
            kiosk.check_in({"kind": "pickup", "code": "K7Q2M9"}, via="code")
            row = phone.locator("#queue li[data-order='A-1042']")
            await row.wait_for(timeout=10_000)
            await phone.wait_for_function(
                "() => /^0:0\\d$/.test(document.querySelector('#queue .wait').textContent)")
            await phone.wait_for_selector("#alerts li[data-state=open]", timeout=10_000)
            await phone.screenshot(path=shots / "pickup-390x844.png", full_page=True)

            # the view restarts: the stream comes back, and staff are asked to sign in again
            await asyncio.to_thread(view.stop)
            await asyncio.to_thread(view.start)
            await phone.wait_for_selector("#signin", state="visible", timeout=20_000)
            await _sign_in(phone, "Anna", PIN)
            await phone.wait_for_function("window.staffView.streams >= 2", timeout=20_000)
            await phone.wait_for_selector("#alerts li[data-state=acknowledged]")
            await browser.close()

    asyncio.run(run())


def test_wrong_pins_lock_out_and_outside_requests_need_a_session(view: View,
                                                                 tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    chromium = need("chromium", "chromium")

    async def run() -> str:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            page = await browser.new_page(viewport=PHONE, bypass_csp=True)
            await page.goto(f"http://127.0.0.1:{view.port}/")
            await page.wait_for_selector("#pin-form", state="visible")
            problems = []
            for _ in range(MAX_TRIES + 1):
                await _sign_in(page, "Ben", "0000")
                await page.wait_for_function(
                    "document.getElementById('signin-problem').textContent !== ''")
                problems.append(await page.inner_text("#signin-problem"))
                await page.evaluate("document.getElementById('signin-problem').textContent=''")
            await _sign_in(page, "Ben", BEN_PIN)  # the right PIN, during the lock-out
            await page.wait_for_function(
                "document.getElementById('signin-problem').textContent !== ''")
            locked = await page.inner_text("#signin-problem")
            assert await page.is_hidden("#work")
            await page.screenshot(path=tmp_path / "locked-390x844.png")
            await browser.close()
        assert problems[0] == "wrong name or PIN"
        assert "too many wrong PINs" in problems[MAX_TRIES - 1]
        return locked

    locked = asyncio.run(run())
    assert "too many wrong PINs" in locked

    # from outside loopback nothing answers without a session; on this device /healthz does
    before = view.health()["refusals"]
    for path in ("/healthz", "/api/overview", "/api/events", "/api/session"):
        status, body = _get(OUTSIDE, view.outside_port, path, source=OUTSIDE)
        assert status == 401, (path, status, body)
        assert body.count("\n") == 1 and "sign in" in body
    after = view.health()["refusals"]
    assert after.get("401 outside", 0) - before.get("401 outside", 0) == 1
    assert after["401 no-session"] - before.get("401 no-session", 0) == 3
    assert after.get("423 locked", 0) >= 2


# What the served kiosk's page receives from its server, as text: textual.js writes the bytes
# of its websocket to xterm.js, which draws them on a canvas; the page keeps its own copy,
# escape sequences taken out, so a test reads what the shopper's screen was given to show.
KIOSK_TEXT = """
(() => {
  const Native = window.WebSocket;
  const decoder = new TextDecoder();
  window.kioskText = "";
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        if (typeof e.data === "string") return;
        const text = decoder.decode(new Uint8Array(e.data), {stream: true})
          .replace(/\\x1b\\[[0-9;?<>=]*[ -\\/]*[@-~]/g, "")
          .replace(/\\x1b\\][^\\x07\\x1b]*(\\x07|\\x1b\\\\)/g, "");
        window.kioskText = (window.kioskText + text).slice(-2000000);
      });
    }
  };
})();
"""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    """The store's broker upstream (a private mosquitto; skipped, saying why, without one)."""
    (tmp_path / "broker").mkdir()
    yield from running_broker(PrivateMosquitto, tmp_path / "broker")


def _started_upstream(upstream: Subscriber, timeout: float = 30.0) -> dict[str, Any]:
    """The served kiosk's size, from its o2o.kiosk.started as upstream got it (the outbox
    lets an event go once the broker has it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with upstream.lock:
            started = [e for e in upstream.events.values() if e["type"] == "o2o.kiosk.started"]
        if started:
            return dict(started[0]["data"])
        time.sleep(0.2)
    raise AssertionError("the served kiosk's o2o.kiosk.started never reached upstream")


def _uplink(sock: Path) -> str:
    from agent.bus.client import BusClient

    with BusClient(sock, timeout=5) as bus:
        return str(bus.status()["uplink"]["state"])


def test_the_served_kiosk_and_the_phone_in_two_browsers_with_the_link_up_and_cut(
        tmp_path: Path, agent_factory: list[AgentProcess], broker: PrivateBroker) -> None:
    """The kiosk as stores run it (`o2o-edge kiosk --serve`, one browser) and the staff view on
    a phone (a second browser): the shopper taps "Call staff" on the kiosk's page, the alert
    shows on the phone, "On my way" there, and the kiosk's page says who is coming; then the
    same with the store's link to its broker cut, and after it is restored the calls, their
    alerts and acks are upstream."""
    need("chromium", "chromium")
    pytest.importorskip("playwright", reason="pip install playwright (in the test extras)")
    host, port = broker.url.split("//", 1)[1].rsplit(":", 1)
    link = NetworkCut(host, int(port)).start()
    upstream = Subscriber(broker.url, "o2o/v1/store-1/kiosk-2/events", "collector-served")
    try:
        assert upstream.connected.wait(10), upstream.health()
        _two_browsers(tmp_path, agent_factory, link, upstream)
    finally:
        upstream.close()
        link.stop()


def _two_browsers(tmp_path: Path, agent_factory: list[AgentProcess], link: NetworkCut,
                  upstream: Subscriber) -> None:
    chromium = need("chromium", "chromium")
    from playwright.async_api import TimeoutError as PlaywrightTimeout
    from playwright.async_api import async_playwright

    store = Store(tmp_path, agent_factory)  # orders, appointments; then the linked config
    write_config(store.cfg_path, url=link.url, device="kiosk-2",
                 extra=f'keepalive_s = 5\nack_timeout_s = 5\n\n[kiosk]\n'
                       f'store_db = "{tmp_path / "store.db"}"\n{STAFF_TABLE}')
    store.agent.start()
    sock = tmp_path / "agent.sock"
    wait_for(lambda: _uplink(sock) == "connected", 30, what="the uplink connected")
    view = View(store, tmp_path)
    view.start()
    kiosk_port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.main", "kiosk", "--serve", f"127.0.0.1:{kiosk_port}",
         "--config", str(store.cfg_path)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    timings: dict[str, float] = {}

    async def run() -> None:
        async with async_playwright() as p:
            kiosk_browser = await p.chromium.launch(executable_path=chromium,
                                                    args=CHROMIUM_FLAGS)
            phone_browser = await p.chromium.launch(executable_path=chromium,
                                                    args=CHROMIUM_FLAGS)
            screen = await kiosk_browser.new_page(viewport={"width": 1024, "height": 600})
            await screen.add_init_script(KIOSK_TEXT)
            for _ in range(100):  # the server takes a moment to listen
                try:
                    await screen.goto(f"http://127.0.0.1:{kiosk_port}/")
                    break
                except Exception:
                    await asyncio.sleep(0.2)
            await screen.wait_for_selector(".xterm-screen", timeout=30_000)
            size = await asyncio.to_thread(_started_upstream, upstream)
            box = await screen.locator(".xterm-screen").bounding_box()
            assert box is not None
            cw, ch = box["width"] / size["cols"], box["height"] / size["rows"]
            twin = KioskApp(load_settings(str(store.cfg_path)), connect=False)  # where to tap
            async with twin.run_test(size=(size["cols"], size["rows"])):
                region = twin.screen.query_one("#call-staff").region
            call_x = box["x"] + (region.x + region.width / 2) * cw
            call_y = box["y"] + (region.y + region.height / 2) * ch

            phone_ctx = await phone_browser.new_context(viewport=PHONE, is_mobile=True,
                                                        has_touch=True, bypass_csp=True)
            phone = await phone_ctx.new_page()
            await phone.goto(f"http://127.0.0.1:{view.port}/")
            await phone.wait_for_selector("#pin-form", state="visible")
            await _sign_in(phone, "Anna", PIN)
            await phone.wait_for_function("window.staffView.streams >= 1")

            async def says(text: str, since: int) -> float:
                """Seconds until the kiosk's page has been given `text` (after `since`)."""
                t0 = time.monotonic()
                await screen.wait_for_function(
                    "([t, n]) => window.kioskText.slice(n).includes(t)", arg=[text, since],
                    timeout=15_000)
                return time.monotonic() - t0

            async def call_and_answer(phase: str, nth: int) -> None:
                since = int(await screen.evaluate("window.kioskText.length"))
                card = phone.locator("#alerts li[data-state=open]")
                for _ in range(3):
                    # the last call's words may lie over the button (a note in the corner):
                    # a tap on them puts them away, as a shopper would find; tap again then
                    t0 = time.monotonic()
                    await screen.mouse.click(call_x, call_y)
                    try:
                        await card.first.wait_for(timeout=3_000)
                        break
                    except PlaywrightTimeout:
                        continue
                await card.first.wait_for(timeout=15_000)
                timings[f"{phase}: tap -> alert on the phone"] = time.monotonic() - t0
                assert "asks for help" in await card.first.inner_text()
                await says("We have let the team know.", since)
                await phone.screenshot(path=tmp_path / f"phone-{phase}.png")
                t1 = time.monotonic()
                await card.first.locator("button.ack").click()
                await says("Anna from our team is coming.", since)
                timings[f"{phase}: On my way -> kiosk says who"] = time.monotonic() - t1
                await screen.screenshot(path=tmp_path / f"kiosk-{phase}.png")
                await phone.wait_for_function(
                    "(n) => document.querySelectorAll('#alerts li[data-state=acknowledged]')"
                    ".length >= n", arg=nth, timeout=10_000)

            await call_and_answer("link up", 1)
            link.cut()  # from here nothing crosses, either way, until restored
            await asyncio.to_thread(wait_for, lambda: _uplink(sock) != "connected", 30,
                                    0.2, "the agent noticing the cut")
            crossed = upstream.unique()
            await call_and_answer("link cut", 2)
            assert upstream.unique() == crossed, "an event crossed a cut link"
            await kiosk_browser.close()
            await phone_browser.close()

    try:
        asyncio.run(run())
    finally:
        serve.terminate()
        serve.wait(10)
        log.close()
        view.stop()
    for what, s in timings.items():
        print(f"{what}: {s * 1000:.0f} ms")
    link.restore()

    def upstream_has(event_type: str) -> int:
        with upstream.lock:
            return sum(e["type"] == event_type for e in upstream.events.values())

    # once restored, both calls, their alerts and their acks are upstream, each once
    wanted = ("o2o.kiosk.assist", "o2o.staff.alert", "o2o.staff.alert.acknowledged")
    wait_for(lambda: all(upstream_has(t) == 2 for t in wanted), 60,
             what=lambda: {t: upstream_has(t) for t in wanted})
