"""The soak's plot and the report's hourly charts as people see them: rendered by Chromium
(Playwright), measured in the page — every point inside its frame, outages shaded as spans,
the axis reaching as far as the title says, hour labels and the value of every bar — and kept
as PNGs beside the test's files for a look."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agent.cli.report import render_html
from simulators.scenario.soak import Sample, plot_svg
from tests.conftest import need

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# what a soak of two store hours looks like: sampled from the opening, the uplink down from
# 0.5 to 0.8 h (the backlog growing) and again at 1.5 h, the drain after closing to 2.4 h
SAMPLES = [
    Sample(
        round(h, 2),
        60 + h,
        14 + int(h),
        depth,
        "connected" if not (0.5 <= h < 0.8 or 1.5 <= h < 1.6) else "connecting",
    )
    for h, depth in [
        (i / 10, (30 * (i - 4) if 5 <= i < 8 else 0) + (50 if i == 15 else 0)) for i in range(25)
    ]
]


def _render(path: Path, shot: Path, measure: str) -> Any:
    chromium = need("chromium", "chromium")
    pytest.importorskip("playwright", reason="pip install playwright (in the test extras)")
    from playwright.async_api import async_playwright

    async def run() -> Any:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            try:
                page = await browser.new_page(viewport={"width": 900, "height": 900})
                await page.goto(path.as_uri())
                await page.screenshot(path=str(shot), full_page=True)
                return await page.evaluate(measure)
            finally:
                await browser.close()

    return asyncio.run(run())


SOAK_MEASURE = """() => {
  const box = e => { const r = e.getBoundingClientRect();
                     return [r.left, r.top, r.right, r.bottom]; };
  const q = s => [...document.querySelectorAll(s)];
  return {
    frames: q('rect.frame').map(box),
    lines: q('polyline').map(p => [...p.points].map(pt => [pt.x, pt.y])),
    outages: q('rect.outage').map(box),
    closing: q('line.closing').map(box),
    texts: q('text').map(t => t.textContent),
  };
}"""


def test_the_soak_plot_keeps_its_points_in_the_frame_and_shades_the_outages(tmp_path: Path) -> None:
    svg = tmp_path / "soak.svg"
    plot_svg(
        [Sample(-0.004, 59.0, 14, 0, "connected"), *SAMPLES[1:]],
        svg,
        "o2o-edge soak: 2 store hours at 450x and the drain after closing, 90 events upstream",
        closes_h=2.0,
    )
    # inline in a page, as a browser shows it embedded (Chromium's screenshot of a bare SVG
    # document waits for ever here)
    page = tmp_path / "soak.html"
    page.write_text(f"<!DOCTYPE html><html><body style='margin:0'>{svg.read_text()}</body></html>")
    got = _render(page, tmp_path / "soak.png", SOAK_MEASURE)
    frames, lines = got["frames"], got["lines"]
    assert len(frames) == len(lines) == 3
    for (left, top, right, bottom), points in zip(frames, lines, strict=True):
        assert len(points) == len(SAMPLES)
        # the first point on the frame's left edge, the last on its right, none outside
        assert points[0][0] == pytest.approx(left, abs=1) and points[-1][0] == pytest.approx(
            right, abs=1
        )
        assert all(
            left - 0.5 <= x <= right + 0.5 and top - 0.5 <= y <= bottom + 0.5 for x, y in points
        )
    # outages are spans: two per panel, as wide as the time the uplink was down
    width = frames[0][2] - frames[0][0]
    spans = sorted(round((r - lft) / width * 2.4, 2) for lft, _, r, _ in got["outages"][:2])
    assert len(got["outages"]) == 6 and spans == [
        pytest.approx(0.1, abs=0.02),
        pytest.approx(0.3, abs=0.02),
    ]
    # the closing is marked at 2 h of the 2.4 the axis runs to, and both are said in words
    assert got["closing"][0][0] == pytest.approx(frames[0][0] + width * 2 / 2.4, abs=1)
    axis = next(t for t in got["texts"] if t.startswith("store hours after opening"))
    assert "0 to 2.40" in axis and "closes at 2 h" in axis
    assert {"0", "0.5", "1", "1.5", "2"} <= set(got["texts"])


REPORT_MEASURE = """() => [...document.querySelectorAll('svg')].map(svg => {
  const b = svg.getBoundingClientRect();
  const inside = e => { const r = e.getBoundingClientRect();
    return r.left >= b.left - 0.5 && r.right <= b.right + 0.5 && r.top >= b.top - 0.5
           && r.bottom <= b.bottom + 0.5; };
  const bars = [...svg.querySelectorAll('rect')];
  const values = [...svg.querySelectorAll('text.value')];
  return {
    title: svg.previousElementSibling.textContent,
    hours: [...svg.querySelectorAll('text.hour')].map(t => t.textContent),
    values: values.map(t => t.textContent),
    bar_heights: bars.map(r => r.getBoundingClientRect().height),
    all_inside: [...bars, ...values, ...svg.querySelectorAll('text.hour')].every(inside),
  };
})"""


def test_the_reports_hourly_charts_label_hours_and_values(tmp_path: Path) -> None:
    taps = [0.0] * 24
    taps[9], taps[10], taps[13], taps[17] = 4, 12, 1, 7
    peak = [0.0] * 24
    peak[10] = 4.5  # a peak does not add up over the day: its highest is said instead
    page = tmp_path / "report.html"
    page.write_text(
        render_html(
            "2026-12-02",
            {"nfc.taps": taps, "footfall.peak_per_min": peak, "survey.sum": peak},
            {"taps": 24},
        )
    )
    charts = _render(page, tmp_path / "report.png", REPORT_MEASURE)
    assert [c["title"] for c in charts] == [
        "Busiest minute (phones nearby) (highest 4.5, hours UTC)",
        "nfc.taps (total 24, hours UTC)",
    ]
    for chart in charts:
        assert chart["hours"] == ["00", "03", "06", "09", "12", "15", "18", "21"]
        assert chart["all_inside"], chart
    assert charts[1]["values"] == ["4", "12", "1", "7"]
    assert charts[0]["values"] == ["4.5"]
    # the tallest bar is the largest value, the others in proportion
    heights = charts[1]["bar_heights"]
    assert heights[10] == max(heights) and heights[9] == pytest.approx(heights[10] / 3, rel=0.05)
