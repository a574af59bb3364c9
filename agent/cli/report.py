"""`o2o-edge report [--day YYYY-MM-DD] [--html FILE] [--json]`: a day's local KPIs, from the
hourly roll-ups in the store's database (works with the agent stopped)."""

from __future__ import annotations

import argparse
import html
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    from agent.cli import report as me

    p = sub.add_parser("report", help="a day's KPIs: taps, scans, check-ins, conversions, "
                                      "dwell, footfall, survey, staff alerts and response "
                                      "times (hourly, UTC)")
    p.add_argument("--config", help="configuration file (default: the usual search)")
    p.add_argument("--day", help="YYYY-MM-DD (UTC; default today)")
    p.add_argument("--html", metavar="FILE", help="also write an HTML page with charts")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=me.cmd_report)


def _num(v: float) -> str:
    return f"{v:.0f}" if v == int(v) else f"{v:.1f}"


def _bars(values: list[float], width: int = 600, height: int = 120) -> str:
    """24 hourly bars with the hour under every third bar and each non-zero value above its
    bar, so the chart reads without hovering."""
    top = max(values) or 1.0
    bw = width / 24
    room_above, room_below = 14, 16  # the values' line and the hours' line
    plot_h = height - room_above - room_below
    base = room_above + plot_h
    parts = [f'<line x1="0" y1="{base}" x2="{width}" y2="{base}" stroke="#888"/>']
    for i, v in enumerate(values):
        h = v / top * plot_h
        x = i * bw
        parts.append(f'<rect x="{x + 1:.1f}" y="{base - h:.1f}" width="{bw - 2:.1f}" '
                     f'height="{h:.1f}" fill="#2a7ab0"><title>{i:02d}:00-{i:02d}:59 '
                     f"{_num(v)}</title></rect>")
        if v:
            parts.append(f'<text class="value" x="{x + bw / 2:.1f}" y="{base - h - 3:.1f}" '
                         f'text-anchor="middle">{_num(v)}</text>')
        if i % 3 == 0:
            parts.append(f'<text class="hour" x="{x + bw / 2:.1f}" y="{height - 3}" '
                         f'text-anchor="middle">{i:02d}</text>')
    return (f'<svg width="{width}" height="{height}" role="img" font-family="sans-serif" '
            f'font-size="10" style="background:#f4f4f4">{"".join(parts)}</svg>')


def _whole_day(metric: str, values: list[float]) -> str:
    """What the day's bars add up to: a count's total; the highest of a peak, which does not
    add up."""
    if metric.endswith("peak_per_min"):
        return f"highest {_num(max(values, default=0.0))}"
    return f"total {_num(sum(values))}"


def render_html(day: str, hourly: dict[str, list[float]], summary: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in summary.items())
    charts = "".join(f"<h3>{html.escape(m)} <small>({_whole_day(m, v)}, hours UTC)</small>"
                     f"</h3>{_bars(v)}" for m, v in sorted(hourly.items())
                     if not m.endswith(".sum"))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>o2o-edge {day}</title>"
            "<style>body{font-family:sans-serif;margin:2em}td{padding:2px 12px}</style>"
            f"</head><body><h1>Store KPIs, {day} (UTC)</h1><table>{rows}</table>"
            f"<h2>By hour</h2>{charts or '<p>No activity recorded.</p>'}</body></html>")


def cmd_report(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.kpi import MAX_DAY, Kpis, now_day, summary

    cfg = load_config(args.config)
    if args.day:
        try:
            start = int(datetime.strptime(args.day, "%Y-%m-%d").replace(tzinfo=UTC)
                        .timestamp())
        except ValueError:
            start = -1
        if not 0 <= start <= MAX_DAY:  # the days the store keeps KPIs for: after the epoch
            print(f"o2o-edge report: --day must be a date YYYY-MM-DD from 1970-01-01 to "
                  f"9999-12-31, not {args.day!r}", file=sys.stderr)
            return 2
    else:
        start = now_day()
    day = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d")
    kpis = Kpis(cfg.kiosk.store_db)
    try:
        hourly = kpis.day(start)
    finally:
        kpis.close()
    summ = summary(hourly)
    if args.html:
        Path(args.html).write_text(render_html(day, hourly, summ), encoding="utf-8")
    if args.json:
        print(json.dumps({"day": day, "summary": summ, "hourly": hourly}, indent=2))
        return 0
    print(f"store KPIs for {day} (UTC)")
    if not summ:
        print("  no activity recorded")
    for key, value in summ.items():
        print(f"  {key:<28} {value}")
    active = {m: v for m, v in hourly.items() if not m.endswith(".sum")}
    if active:
        print("  by hour: " + " ".join(f"{h:02d}" for h in range(24)))
        for m, values in sorted(active.items()):
            print(f"  {m[:8]:<8} " + " ".join(f"{int(v):>2}" if v else " ." for v in values))
    return 0
