"""The served kiosk on every common store screen, in a real headless Chromium: one browser,
one page per screen size, one server and agent for the whole module. On each size a shopper's
path is tapped through (home, typed pickup, privacy, an offer's hand-off, staff mode), and on
each screen:

- every control (button, key, QR code, table) is inside the browser's viewport, not cut and
  not under another one — read from a headless twin of the app at the browser's cell grid
  (same layout), mapped to pixels through the size of xterm.js's screen;
- every button is at least 48 CSS px each way (a ~9 mm fingertip);
- every QR code on screen decodes from the screenshot, with the project's decoder and with
  zbar, to what the kiosk meant to show;
- every product image is drawn: the screenshot's pixels in the image's box have the picture's
  colours (mean within 25 per channel of the picture scaled to the box, and not flat).

Screenshots are kept under the test's tmp dir (the path is printed). The default run covers
every size in English; the slow run adds German and Spanish."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from textual.widgets import Button

from drivers.qr.decoders import RobustDecoder
from kiosk.app import KioskApp
from kiosk.pin import hash_pin
from kiosk.settings import load_settings
from kiosk.widgets.image_view import ImageView
from tests.conftest import ROOT, AgentProcess, need
from tests.integration.test_kiosk_flows import Store
from tests.snapshots.kiosk_screens import controls, problems, qr_views

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]
SIZES = [(800, 480), (1024, 600), (1280, 720), (1280, 800), (1920, 1080), (720, 1280),
         (1080, 1920)]
TOUCH_PX = 48  # the smallest touch target, CSS px (about 9 mm)
PIN = "2468"


class Served:
    def __init__(self, tmp: Path, agents: list[AgentProcess]) -> None:
        self.store = Store(tmp, agents, kiosk=f'staff_pin_hash = "{hash_pin(PIN)}"\n')
        self.store.agent.start()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.log = (tmp / "serve.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli.main", "kiosk", "--serve",
             f"127.0.0.1:{self.port}", "--sessions", "4", "--config",
             str(self.store.cfg_path)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.log)
        self.shots = tmp / "screenshots"
        self.shots.mkdir()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    need("chromium", "chromium")
    pytest.importorskip("playwright", reason="pip install playwright (in the test extras)")
    agents: list[AgentProcess] = []
    s = Served(tmp_path_factory.mktemp("kiosk-sizes"), agents)
    print(f"\nscreenshots of the served kiosk: {s.shots}")
    yield s
    s.close()
    for a in agents:
        a.kill()


def decode(png: bytes, box: tuple[float, float, float, float]) -> tuple[list[str], list[str]]:
    """The codes in a screenshot's box (x, y, w, h in px, with some margin), read by the
    project's decoder and by zbar."""
    import cv2
    from pyzbar import pyzbar

    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    x, y, w, h = box
    m = 12
    crop = img[max(0, int(y) - m):int(y + h) + m, max(0, int(x) - m):int(x + w) + m]
    ours = [c.payload.decode() for c in RobustDecoder().decode(crop)]
    zbar = [d.data.decode() for d in pyzbar.decode(crop, symbols=[pyzbar.ZBarSymbol.QRCODE])]
    return ours, zbar


def _image_drawn(png: bytes, box: tuple[float, float, float, float],
                 view: ImageView) -> list[str]:
    import cv2

    shot = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]  # RGB
    x, y, w, h = (round(v) for v in box)
    seen = shot[y + 2:y + h - 2, x + 2:x + w - 2].reshape(-1, 3).astype(float)
    cols, rows = view.cells
    want = np.asarray(view.image.resize((cols, rows * 2))).reshape(-1, 3).astype(float)
    if seen.size == 0:
        return ["the product image's box is empty"]
    drift = np.abs(seen.mean(axis=0) - want.mean(axis=0))
    out = []
    if drift.max() > 25:
        out.append(f"the product image's colours are off by {drift.round()} (mean RGB)")
    if seen.std(axis=0).max() < 10:
        out.append("the product image's box is flat: no picture drawn")
    return out


class Session:
    """One browser page on the served kiosk and its headless twin at the same grid."""

    def __init__(self, served: Served, page: Any, pilot: Any, twin: KioskApp,
                 box: dict[str, float], size: tuple[int, int], tag: str) -> None:
        self.served, self.page, self.pilot, self.twin = served, page, pilot, twin
        self.box, self.size, self.tag = box, size, tag
        self.cw = box["width"] / twin.size.width
        self.ch = box["height"] / twin.size.height
        self.failures: list[str] = []

    def px(self, widget: Any) -> tuple[float, float, float, float]:
        r = widget.region
        return (self.box["x"] + r.x * self.cw, self.box["y"] + r.y * self.ch,
                r.width * self.cw, r.height * self.ch)

    async def settled(self) -> bytes:
        """A screenshot once the page stopped changing (the kiosk drew the new screen)."""
        last = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            shot = await self.page.screenshot()
            if shot == last:
                return shot
            last = shot
            await asyncio.sleep(0.15)
        return last

    async def tap(self, selector: str) -> None:
        x, y, w, h = self.px(self.twin.screen.query_one(selector))
        await self.page.mouse.click(x + w / 2, y + h / 2)
        await self.pilot.click(selector)
        await self.pilot.pause()

    async def check(self, name: str) -> None:
        twin, where = self.twin, f"{self.tag} {name}"
        await self.pilot.pause()
        shot = await self.settled()
        (self.served.shots / f"{self.tag}-{name}.png").write_bytes(shot)
        self.failures += [f"{where}: {p}" for p in problems(twin)]
        vw, vh = self.size
        for widget in controls(twin):
            x, y, w, h = self.px(widget)
            label = f"#{widget.id}" if widget.id else type(widget).__name__
            if x < 0 or y < 0 or x + w > vw + 0.5 or y + h > vh + 0.5:
                self.failures.append(f"{where}: {label} at {x:.0f},{y:.0f} {w:.0f}x{h:.0f} "
                                     f"px is outside the {vw}x{vh} viewport")
            if isinstance(widget, Button) and (w < TOUCH_PX or h < TOUCH_PX):
                self.failures.append(f"{where}: {label} is {w:.0f}x{h:.0f} px, under "
                                     f"{TOUCH_PX} px")
        for picture in twin.screen.query(ImageView):
            if picture.display and picture.region.area:
                self.failures += [f"{where}: {p}" for p in _image_drawn(shot, self.px(picture),
                                                                         picture)]
        for view in qr_views(twin):
            ours, zbar = decode(shot, self.px(view))
            deadline = time.monotonic() + 5
            while (ours, zbar) != ([view.text], [view.text]) and time.monotonic() < deadline:
                shot = await self.page.screenshot()
                ours, zbar = decode(shot, self.px(view))
            if ours != [view.text] or zbar != [view.text]:
                self.failures.append(f"{where}: #{view.id} read as {ours} (ours), {zbar} "
                                     f"(zbar), not {view.text!r}")


async def walk(served: Served, browser: Any, size: tuple[int, int], language: str,
               full: bool) -> list[str]:
    page = await browser.new_page(viewport={"width": size[0], "height": size[1]})
    grid: list[tuple[int, int]] = []

    def on_ws(ws: Any) -> None:
        q = dict(p.split("=") for p in ws.url.split("?", 1)[1].split("&"))
        grid.append((int(q["width"]), int(q["height"])))

    page.on("websocket", on_ws)
    for _ in range(100):  # the server takes a moment to listen
        try:
            await page.goto(f"http://127.0.0.1:{served.port}/")
            break
        except Exception:
            await asyncio.sleep(0.2)
    await page.wait_for_function("document.body.classList.contains('-first-byte')",
                                 timeout=30_000)
    box = await page.locator(".xterm-screen").bounding_box()
    assert box is not None and grid
    twin = KioskApp(load_settings(str(served.store.cfg_path)), connect=False)
    twin.agent_up = True
    twin.link.socket = served.shots / "twin-talks-to-nobody.sock"
    tag = f"{size[0]}x{size[1]}-{language}"
    async with twin.run_test(size=grid[-1]) as pilot:
        s = Session(served, page, pilot, twin, box, size, tag)
        await s.check("attract")
        if language != "en":
            await s.tap(f"#lang-{language}")
        await s.tap("#go-pickup")
        await s.check("checkin")
        if twin.size.width < 120:  # the privacy QR is a tap away
            await s.tap("#privacy-more")
            await s.check("privacy")
            await s.tap("#back")  # to the check-in it was opened from
        await s.tap("#back")
        if full:
            await s.tap("#go-appointment")
            await s.check("appointment")
            await s.tap("#back")
        await s.tap("#go-browse")
        await s.check("offer")
        await s.tap("#handoff")
        await s.check("handoff")
        await s.tap("#back")
        if full:
            await s.tap("#go-privacy")
            await s.check("privacy-home")
            await s.tap("#back")
        await s.tap("#go-staff")
        await s.check("staff-pin")
        for key in PIN:
            await s.tap(f"#key-{key}")
        await s.tap("#key-submit")
        await s.check("staff")
        await s.tap("#exit")
        await s.check("attract-again")
    await page.close()
    return s.failures


def run_matrix(served: Served, languages: list[str], full: bool) -> None:
    from playwright.async_api import async_playwright

    async def run() -> list[str]:
        failures: list[str] = []
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=need("chromium", "chromium"),
                                              args=CHROMIUM_FLAGS)
            for size in SIZES:
                for language in languages:
                    failures += await walk(served, browser, size, language, full)
            await browser.close()
        return failures

    failures = asyncio.run(run())
    assert not failures, f"screenshots in {served.shots}:\n" + "\n".join(failures)


def test_every_size_shows_whole_screens_and_readable_codes(served: Served) -> None:
    run_matrix(served, ["en"], full=False)


@pytest.mark.slow
def test_every_size_every_language_every_screen(served: Served) -> None:
    run_matrix(served, ["de", "es"], full=True)
