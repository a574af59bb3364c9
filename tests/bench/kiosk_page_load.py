"""The served kiosk's page load in headless Chromium: navigation -> first bytes of the kiosk
drawn -> the attract screen complete (the page stopped changing: two screenshots alike, the
time of the first of them; resolution one screenshot, ~30-100 ms), at given screen sizes,
and the served kiosk's footprint: the server and one session's kiosk process (RSS), on the
attract screen and with a product card open, its picture drawn as real pixels by the page."""

from __future__ import annotations

import asyncio
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _children(pid: int) -> list[int]:
    """Every process under pid (textual-serve starts the kiosk through a shell)."""
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for c in (task / "children").read_text().split():
                out += [int(c), *_children(int(c))]
    except OSError:  # gone meanwhile
        pass
    return out


async def _load(browser: Any, url: str, size: tuple[int, int]) -> tuple[float, float, Any]:
    page = await browser.new_page(viewport={"width": size[0], "height": size[1]})
    t0 = time.monotonic()
    await page.goto(url)
    await page.wait_for_function("document.body.classList.contains('-first-byte')",
                                 polling="raf", timeout=30_000)
    first = time.monotonic() - t0
    last, t_last = b"", 0.0
    while True:
        shot = await page.screenshot()
        now = time.monotonic()
        if shot == last:
            return first, t_last - t0, page
        last, t_last = shot, now


def _footprint(server: int, kiosks: list[int]) -> dict[str, float]:
    session = sum(_rss_mib(k) for k in kiosks)
    return {"server": _rss_mib(server), "one_session (kiosk and its shell)": round(session, 1),
            "total": round(_rss_mib(server) + session, 1)}


async def _card_open(page: Any, cfg: Path, server: int) -> dict[str, Any]:
    """A shelf tag tapped (through the agent): the card opens with its picture, which the
    page draws as real pixels; the footprint then."""
    import tomllib

    from agent.bus.client import BusClient

    sock = tomllib.loads(cfg.read_text())["bus"]["socket"]
    with BusClient(Path(sock)) as bus:
        bus.emit([{"type": "o2o.nfc.tap", "data": {
            "tag": {"id": "04a1b2c3d4e5f6", "kind": "shelf"}, "records": [], "ndef": "ok"}}])
    await page.wait_for_function(
        "Array.from(document.querySelectorAll('#pictures img')).some("
        "i => i.complete && i.naturalWidth > 0 && parseFloat(i.style.width) > 200)",
        timeout=30_000)
    await asyncio.sleep(1.0)  # what the page's messages and the picture cost has settled
    pictures = await page.evaluate("document.querySelectorAll('#pictures img').length")
    return {**_footprint(server, _children(server)), "pictures_drawn": pictures}


def measure(cfg: Path, sizes: list[tuple[int, int]], runs: int = 3) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "kiosk", "--serve",
                               f"127.0.0.1:{port}", "--sessions", "4", "--config", str(cfg)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"

    async def run() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            for _ in range(100):  # the server takes a moment to listen
                try:
                    page = await browser.new_page()
                    await page.goto(url)
                    await page.close()
                    break
                except Exception:
                    await asyncio.sleep(0.2)
            for size in sizes:
                firsts, completes = [], []
                for _ in range(runs):
                    first, complete, page = await _load(browser, url, size)
                    firsts.append(first)
                    completes.append(complete)
                    kiosks = _children(server.pid)
                    if size == sizes[0] and "served_rss_mib" not in out and kiosks:
                        out["served_rss_mib"] = _footprint(server.pid, kiosks)
                        out["served_rss_mib_card_open"] = await _card_open(page, cfg, server.pid)
                    await page.close()
                    while _children(server.pid):  # the session ends with its page
                        await asyncio.sleep(0.05)
                out[f"{size[0]}x{size[1]}"] = {
                    "first_bytes_drawn_ms": round(statistics.median(firsts) * 1000),
                    "attract_complete_ms": round(statistics.median(completes) * 1000),
                    "attract_complete_max_ms": round(max(completes) * 1000), "runs": runs}
            await browser.close()
        return out

    try:
        return asyncio.run(run())
    finally:
        server.terminate()
        server.wait(10)
