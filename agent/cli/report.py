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


def _bars(values: list[float], width: int = 480, height: int = 80) -> str:
    top = max(values) or 1.0
    bw = width / 24
    bars = "".join(
        f'<rect x="{i * bw + 1:.1f}" y="{height - v / top * (height - 12):.1f}" '
        f'width="{bw - 2:.1f}" height="{v / top * (height - 12):.1f}"><title>{i:02d}:00 '
        f'{v:g}</title></rect>' for i, v in enumerate(values))
    return (f'<svg width="{width}" height="{height}" role="img" '
            f'style="fill:#2a7ab0;background:#f4f4f4">{bars}</svg>')


def render_html(day: str, hourly: dict[str, list[float]], summary: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in summary.items())
    charts = "".join(f"<h3>{html.escape(m)}</h3>{_bars(v)}" for m, v in sorted(hourly.items())
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
