"""The served kiosk in a real headless Chromium, as on the store's touch screen: textual-serve
runs `o2o-edge kiosk` per browser connection, the test clicks through a pickup check-in with
the mouse, then opens an offer, takes a screenshot and reads the on-screen hand-off QR code
from it with the project's decoder.

Where to click is found with a headless twin of the app at the browser's terminal size (the
served kiosk reports its size in `o2o.kiosk.started`): same layout, so a widget's cells map to
pixels through the size of xterm.js's screen."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from agent.config import load_config
from drivers.qr.decoders import RobustDecoder
from kiosk.app import KioskApp
from tests.conftest import ROOT, AgentProcess, need
from tests.integration.test_kiosk_flows import Store

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _started(store: Store, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for e in store.events():
            if e["type"] == "o2o.kiosk.started":
                return dict(e["data"])
        time.sleep(0.3)
    raise AssertionError("the served kiosk never reported o2o.kiosk.started")


def _decode_png(png: bytes) -> list[str]:
    import cv2

    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    return [c.payload.decode() for c in RobustDecoder().decode(img)]


def test_pickup_check_in_and_handoff_qr_in_chromium(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    chromium = need("chromium", "chromium")
    pytest.importorskip("playwright", reason="pip install playwright (in the test extras)")
    from playwright.async_api import async_playwright

    store = Store(tmp_path, agent_factory)
    store.agent.start()
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.main", "kiosk", "--serve", f"127.0.0.1:{port}",
         "--config", str(store.cfg_path)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)

    tokens: list[str] = []

    async def run() -> None:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            for _ in range(100):  # the server takes a moment to listen
                try:
                    await page.goto(f"http://127.0.0.1:{port}/")
                    break
                except Exception:
                    await asyncio.sleep(0.2)
            await page.wait_for_selector(".xterm-screen", timeout=30_000)
            size = await asyncio.to_thread(_started, store)
            box = await page.locator(".xterm-screen").bounding_box()
            assert box is not None
            cw, ch = box["width"] / size["cols"], box["height"] / size["rows"]
            twin = KioskApp(load_config(str(store.cfg_path)), connect=False)
            twin.agent_up = True
            twin.link.socket = tmp_path / "twin-talks-to-nobody.sock"
            async with twin.run_test(size=(size["cols"], size["rows"])) as pilot:
                async def tap(selector: str, settle: float = 0.4) -> None:
                    region = twin.screen.query_one(selector).region
                    await page.mouse.click(box["x"] + (region.x + region.width / 2) * cw,
                                           box["y"] + (region.y + region.height / 2) * ch)
                    await pilot.click(selector)
                    await pilot.pause()
                    await asyncio.sleep(settle)

                await tap("#go-pickup")
                for key in "K7Q2M9":
                    await tap(f"#key-{key}", settle=0.15)
                await tap("#key-submit", settle=1.0)
                (tmp_path / "result.png").write_bytes(await page.screenshot())
                twin.show_result("pickup.ok", {"name": "Anna", "minutes": 3})  # as served
                await pilot.pause()
                await tap("#done")
                await tap("#skip")
                await tap("#go-browse")
                await tap("#handoff", settle=0.5)
                found: list[str] = []
                deadline = time.monotonic() + 15
                while not found and time.monotonic() < deadline:
                    shot = await page.screenshot()
                    found = _decode_png(shot)
                (tmp_path / "handoff.png").write_bytes(shot)
            await browser.close()
        assert found, f"no QR code read from the screenshot ({tmp_path / 'handoff.png'})"
        url = found[0]
        assert url.startswith("https://shop.example/p/autumn-coffee?")
        q = parse_qs(urlsplit(url).query)
        tokens.extend(q.pop("o2o_h"))  # the hand-off event's id (checked below)
        assert q == {
            "utm_source": ["kiosk"], "utm_medium": ["touch"], "utm_campaign": ["autumn-coffee"],
            "utm_content": ["store-1/kiosk-2"]}

    try:
        asyncio.run(run())
    finally:
        serve.terminate()
        serve.wait(10)
        log.close()
    events = store.events()
    assert [e["id"] for e in events if e["type"] == "o2o.kiosk.handoff"] == tokens
    checkins = [e["data"] for e in events if e["type"] == "o2o.kiosk.checkin"]
    # with the bundle's version and the session's variants (none: no page with variants)
    assert checkins == [{"kind": "pickup", "outcome": "pickup.ok", "via": "code",
                         "order": "A-1042", "content_version": 1, "variants": {}}], \
        json.dumps(checkins)


def _magenta_px(png: bytes) -> int:
    import cv2

    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).astype(int)  # BGR
    b, g, r = img[..., 0], img[..., 1], img[..., 2]
    return int(((r > 200) & (b > 200) & (g < 60)).sum())


def test_a_tampered_picture_is_not_shown(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    """A bundle whose picture's bytes do not match its hash is refused whole: the page shows
    the kiosk's built-in offer with its own picture as real pixels, nothing of the tampered
    file (bright magenta), and the kiosk says why in its start event."""
    chromium = need("chromium", "chromium")
    pytest.importorskip("playwright", reason="pip install playwright (in the test extras)")
    import hashlib
    import shutil

    from PIL import Image
    from playwright.async_api import async_playwright

    from kiosk.app import SAMPLE_CONTENT
    from kiosk.images import HASHES

    content = tmp_path / "content"
    shutil.copytree(SAMPLE_CONTENT, content)
    manifest = json.loads((content / "manifest.json").read_text())
    manifest["version"] = 2
    (content / "manifest.json").write_text(json.dumps(manifest))
    signed = content / "img" / "autumn-coffee.png"
    hashes = {f"img/{f.name}": hashlib.sha256(f.read_bytes()).hexdigest()
              for f in (content / "img").iterdir()}
    (content / HASHES).write_text(json.dumps(hashes))
    Image.new("RGB", (160, 160), (255, 0, 255)).save(signed)  # swapped after signing
    store = Store(tmp_path, agent_factory, kiosk=f'content_dir = "{content}"\n')
    store.agent.start()
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.main", "kiosk", "--serve", f"127.0.0.1:{port}",
         "--config", str(store.cfg_path)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)

    async def run() -> tuple[bytes, int]:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            for _ in range(100):  # the server takes a moment to listen
                try:
                    await page.goto(f"http://127.0.0.1:{port}/")
                    break
                except Exception:
                    await asyncio.sleep(0.2)
            await page.wait_for_selector(".xterm-screen", timeout=30_000)
            await asyncio.to_thread(_started, store)
            store.emit("o2o.nfc.tap", {"tag": {"id": "04a1b2c3d4e5f6", "kind": "shelf"},
                                       "records": [], "ndef": "ok"})
            # the card's picture is the third the page gets (after the logo and the slide's,
            # which is the same picture): wait for one that covers a big box
            await page.wait_for_function(
                "Array.from(document.querySelectorAll('#pictures img')).some("
                "i => i.complete && i.naturalWidth > 0 && parseFloat(i.style.width) > 300)",
                timeout=30_000)
            shot = await page.screenshot()
            drawn = await page.evaluate(
                "document.querySelectorAll('#pictures img').length")
            await browser.close()
        return shot, int(drawn)

    try:
        shot, drawn = asyncio.run(run())
    finally:
        serve.terminate()
        serve.wait(10)
        log.close()
    (tmp_path / "tampered.png").write_bytes(shot)
    assert drawn >= 1, "no picture drawn at all: the check below would tell nothing"
    assert _magenta_px(shot) == 0, f"the tampered picture shows ({tmp_path / 'tampered.png'})"
    started = _started(store)
    assert "img/autumn-coffee.png its bytes do not match the bundle's hash" in \
        started["content_problem"]
    assert started["content_version"] == 1  # the built-in sample, shown instead
