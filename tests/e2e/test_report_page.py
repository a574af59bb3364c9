"""The report page a store manager opens (`o2o-edge report --html`), as Chromium draws it at a
laptop's and a phone's width: a day of real roll-ups (events through the agent's KPI code into
a store database, read back as `report` reads them) shows the shoppers' path with its
conversions, the NPS, sales, offers per campaign and both A/B tables with their variants; no
value cut, the page no wider than the screen (a table wider than a phone scrolls sideways in
its own box, no word broken up), and the page is kept as a PNG."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from agent.cli.report import render_html
from agent.kpi import Kpis, summary
from tests.conftest import need
from tests.e2e.test_plots import CHROMIUM_FLAGS

HOUR = 1_795_000_000 // 3600 * 3600  # an afternoon in UTC
DAY = HOUR // 86400 * 86400
WIDTHS = [(1280, 800), (390, 844)]

# every table cell and heading: its box against the page's width (unless its table scrolls
# sideways in its own box), whether its text fits, and whether a word was broken in two
MEASURE = """() => {
  const width = document.documentElement.clientWidth;
  const cells = [...document.querySelectorAll('td, th, h1, h2, h3')];
  const scrolls = c => { const t = c.closest('.t');
                         return t !== null && t.scrollWidth > t.clientWidth
                                && getComputedStyle(t).overflowX === 'auto'; };
  const broken = c => { const r = document.createRange(); r.selectNodeContents(c);
    const lines = new Set([...r.getClientRects()].map(x => Math.round(x.top)));
    return lines.size > 1 && !/[\\s-]/.test(c.textContent.trim()); };
  return {
    width, scroll: document.documentElement.scrollWidth,
    text: document.body.innerText,
    cut: cells.filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.textContent),
    outside: cells.filter(c => c.getBoundingClientRect().right > width + 1 && !scrolls(c))
                  .map(c => c.textContent),
    broken: cells.filter(broken).map(c => c.textContent),
  };
}"""


def _day(tmp_path: Path) -> tuple[dict[str, list[float]], dict[str, Any]]:
    events: list[tuple[str, int, dict[str, Any]]] = []
    at = HOUR
    for i in range(12):  # shoppers with the app: 12 visits of 4-10 minutes
        events.append(("o2o.ble.presence", at + i * 300,
                       {"action": "exit", "kind": "app", "dwell_s": 240 + 30 * i}))
    for i, variant in enumerate(["warm"] * 9 + ["bold"] * 7):  # an A/B test of a page
        events.append(("o2o.kiosk.view", at + 60 * i, {"page": "autumn-coffee",
                       "variant": variant, "first": i % 2 == 0, "campaign": "autumn-coffee"}))
        if i % 3 == 0:
            events.append(("o2o.kiosk.handoff", at + 60 * i + 20, {
                "page": "autumn-coffee", "variant": variant, "first": True}))
    for score in [10, 9, 9, 7, 3, 10]:  # the 0-10 survey as the kiosk sends it
        events.append(("o2o.kiosk.survey", at + 3000, {"score": score, "scale": 11}))
    events += [("o2o.kiosk.checkin", at + 1200, {"kind": "pickup", "outcome": "pickup.ok"}),
               ("o2o.kiosk.checkin", at + 1300, {"kind": "pickup", "outcome": "pickup.ready"}),
               ("o2o.nfc.tap", at + 1400, {"tag": {"kind": "shelf"}})]
    for i, total in enumerate([1250, 4999, 830]):
        events.append(("o2o.pos.sale", at + 2000 + i, {"total": total, "currency": "EUR",
                                                       "visit": "v" if i < 2 else None}))
    events.append(("o2o.offer.redeemed", at + 2100, {"campaign": "autumn-coffee"}))
    kpis = Kpis(tmp_path / "store.db")
    try:
        kpis.add_bodies([(t, ts, json.dumps({"data": d})) for t, ts, d in events])
        kpis.flush()
        hourly = kpis.day(DAY)
    finally:
        kpis.close()
    return hourly, summary(hourly)


def test_the_report_page_reads_whole_on_a_laptop_and_a_phone(tmp_path: Path) -> None:
    chromium = need("chromium", "chromium")
    pytest.importorskip("playwright", reason="pip install playwright (in the test extras)")
    from playwright.async_api import async_playwright

    hourly, s = _day(tmp_path)
    assert s["visits"] == 12 and s["views"] == 16 and s["sales"] == 3  # the day went in
    page_file = tmp_path / "report.html"
    page_file.write_text(render_html("2026-11-18", hourly, s))
    print(f"\nthe report page's screenshots: {tmp_path}")

    async def run() -> list[dict[str, Any]]:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            try:
                seen = []
                for w, h in WIDTHS:
                    page = await browser.new_page(viewport={"width": w, "height": h})
                    await page.goto(page_file.as_uri())
                    await page.screenshot(path=str(tmp_path / f"report-{w}x{h}.png"),
                                          full_page=True)
                    seen.append(await page.evaluate(MEASURE))
                    await page.close()
                return seen
            finally:
                await browser.close()

    for (w, _), got in zip(WIDTHS, asyncio.run(run()), strict=True):
        assert got["scroll"] <= got["width"], f"{w} px: the page is wider than the screen"
        assert not got["cut"], f"{w} px: cut cells {got['cut']}"
        assert not got["outside"], f"{w} px: cells past the screen's edge {got['outside']}"
        assert not got["broken"], f"{w} px: words broken in two {got['broken']}"
        text = got["text"]
        # the shoppers' path and its conversions, in words, with integer counts
        for words in ("The shoppers' path", "A/B variants", "A/B variants per shopper",
                      "warm", "bold", "autumn-coffee", "By hour"):
            assert words in text, (w, words)
        assert "NPS" in text and "EUR" in text, text[:2000]
        assert "12.0" not in text and "16.0" not in text  # counts read as counts
