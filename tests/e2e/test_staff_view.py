"""The staff view in a real headless Chromium at a phone's viewport (390x844), against the real
agent process and the staff view's own process: staff sign in with a PIN; a shopper's call for
staff from the kiosk (a headless kiosk app on the same agent) shows on the phone; "On my way"
there changes the kiosk's words to who is coming. A wrong PIN five times locks the name out; a
request from outside loopback without a session is refused; after the view restarts the page's
event stream comes back (the page asks staff to sign in again: sessions live in memory).
Screenshots at 390x844 and 768x1024 are kept under the test's tmp dir (the path is printed)."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.contracts.alerts import token_digest
from kiosk.app import KioskApp
from kiosk.pin import MAX_TRIES, hash_pin
from kiosk.settings import load_settings
from simulators.scenario.shopper import until
from tests.conftest import ROOT, AgentProcess, need, wait_for
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


@pytest.fixture
def view(tmp_path: Path, agent_factory: list[AgentProcess]) -> Any:
    need("chromium", "chromium")
    pytest.importorskip("playwright", reason="pip install playwright (in the test extras)")
    store = Store(tmp_path, agent_factory, kiosk=STAFF_TABLE)
    store.agent.start()
    v = View(store, tmp_path)
    v.start()
    v.store = store  # type: ignore[attr-defined]
    yield v
    v.stop()


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
