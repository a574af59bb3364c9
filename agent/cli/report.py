"""`o2o-edge report [--day YYYY-MM-DD] [--html FILE] [--csv FILE] [--json]`: a day's local
KPIs, from the hourly roll-ups in the store's database (works with the agent stopped), in the
store's time ([device] timezone): the shoppers' funnel, then each group of KPIs by name, then
the day by hour; a CSV of the same for a spreadsheet, JSON for machines."""

from __future__ import annotations

import argparse
import csv
import html
import io
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.cli.kpi_names import (
    FUNNEL,
    funnel,
    grouped,
    label,
    shoppers,
    shown,
    table,
    variants,
)


def add_parser(sub: Any) -> None:
    from agent.cli import report as me

    p = sub.add_parser("report", help="a day's KPIs: taps, scans, check-ins, conversions, "
                                      "dwell, footfall, survey, staff alerts and response "
                                      "times (hourly, in the store's time zone)")
    p.add_argument("--config", help="configuration file (default: the usual search)")
    p.add_argument("--day", help="YYYY-MM-DD in the store's time zone (default today)")
    p.add_argument("--html", metavar="FILE", help="also write an HTML page with charts")
    p.add_argument("--csv", metavar="FILE",
                   help="also write the day as CSV for a spreadsheet ('-': print it instead)")
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
    # drawn in its own units and scaled to the page: a phone shows the whole day, smaller
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" font-family="sans-serif" font-size="10" '
            f'style="background:#f4f4f4">{"".join(parts)}</svg>')


def _whole_day(metric: str, values: list[float]) -> str:
    """What the day's bars add up to: a count's total; the highest of a peak, which does not
    add up."""
    if metric.endswith("peak_per_min"):
        return f"highest {_num(max(values, default=0.0))}"
    return f"total {_num(sum(values))}"


def render_html(day: str, hourly: dict[str, list[float]], summary: dict[str, Any],
                zone: str = "UTC") -> str:
    zone_h = html.escape(zone)
    steps = funnel(summary)
    top = max((n for _, n, _ in steps), default=0) or 1
    path = "".join(f"<tr><td>{html.escape(name)}</td><td class='n'>{n}</td><td class='b'>"
                   f"<div class='bar' style='width:{n / top * 100:.0f}%'></div></td>"
                   f"<td>{html.escape(note)}</td></tr>" for name, n, note in steps)
    tests = "".join(f"<tr>{''.join(f'<td>{html.escape(str(c))}</td>' for c in row)}</tr>"
                    for row in variants(summary))
    if tests:
        tests = ("<h2>A/B variants</h2><table><tr><th>Page</th><th>Variant</th><th>Views</th>"
                 "<th>Hand-offs</th><th>Handed off</th><th>95 % interval</th></tr>"
                 f"{tests}</table>")
    people = "".join(f"<tr>{''.join(f'<td>{html.escape(str(c))}</td>' for c in row)}</tr>"
                     for row in shoppers(summary))
    if people:
        tests += ("<h2>A/B variants per shopper</h2><table><tr><th>Page</th><th>Variant</th>"
                  "<th>Shoppers</th><th>Took it</th><th>Share</th><th>95 % interval</th></tr>"
                  f"{people}</table>")
    groups = "".join(
        f"<h2>{html.escape(title)}</h2><table>" + "".join(
            f"<tr><td>{html.escape(label(k))}</td><td class='n'>"
            f"{html.escape(shown(k, summary[k]))}</td></tr>" for k in keys) + "</table>"
        for title, keys in grouped(summary, [*FUNNEL, *_ab_keys(summary)]))
    charts = "".join(f"<h3>{html.escape(label(m))} <small>({_whole_day(m, v)}, hours "
                     f"{zone_h})</small></h3>{_bars(v)}" for m, v in sorted(hourly.items())
                     if not m.endswith(".sum"))
    body = (f"<h1>Store KPIs, {day} ({zone_h})</h1>"
            f"<h2>The shoppers' path</h2><table>{path}</table>{groups}{tests}"
            f"<h2>By hour</h2>{charts or '<p>No activity recorded.</p>'}")
    # a table wider than a phone (the A/B tables' six columns) scrolls sideways in its own
    # box; the page keeps to the screen's width and no word is broken up
    body = body.replace("<table>", "<div class='t'><table>").replace("</table>",
                                                                     "</table></div>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>o2o-edge {day}</title>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<style>body{font-family:sans-serif;margin:1em auto;padding:0 1em;"
            "max-width:60em}.t{overflow-x:auto;max-width:100%}"
            "table{border-collapse:collapse}td,th{padding:2px 8px;vertical-align:top}"
            "td.n{text-align:right;white-space:nowrap}td.b{width:40%;min-width:4em}"
            ".bar{height:12px;background:#2a7ab0}svg{max-width:100%;height:auto}"
            "@media (max-width:480px){table{font-size:14px}td,th{padding:2px 5px}}</style>"
            f"</head><body>{body}</body></html>")


def _csv_value(value: Any) -> str:
    """A whole number without ".0", a share as it is (0.25), an interval as "low - high"."""
    if isinstance(value, list):
        return " - ".join(_csv_value(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _ab_table(title: str, names: tuple[str, str, str],
              found: list[tuple[str, str, int, int, str, str]]) -> list[str]:
    """An A/B table of the text report: page and variant left, the figures right."""
    if not found:
        return []
    head = ("Page", "Variant", *names, "95 % interval")
    rows = [head, *[(p, v, str(n), str(h), c, ci) for p, v, n, h, c, ci in found]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return ["", title, *["  " + "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                                          for i, (c, w) in enumerate(zip(r, widths,
                                                                         strict=True)))
                         for r in rows]]


def _ab_keys(summary: dict[str, Any]) -> list[str]:
    """The A/B tests' figures, which have a table of their own."""
    return [k for k in summary if k.startswith("ab.")]


def render_csv(day: str, hourly: dict[str, list[float]], summary: dict[str, Any]) -> str:
    """One row per KPI: its key, its name, the day's value and, for a count, its 24 hours
    (local time); the summary's figures first, then hourly counts it does not list."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["day", "kpi", "name", "day_value", *[f"{h:02d}" for h in range(24)]])
    for key, value in summary.items():
        hours = hourly.get(key)
        w.writerow([day, key, label(key), _csv_value(value),
                    *([_num(v) for v in hours] if hours else [""] * 24)])
    for key, hours in sorted(hourly.items()):
        if key not in summary and not key.endswith(".sum"):
            w.writerow([day, key, label(key), _csv_value(sum(hours)), *[_num(v) for v in hours]])
    return out.getvalue()


def render_text(day: str, hourly: dict[str, list[float]], summary: dict[str, Any],
                zone: str) -> str:
    lines = [f"Store KPIs for {day} (times in {zone})"]
    if not summary:
        return "\n".join([*lines, "  no activity recorded"]) + "\n"
    path = funnel(summary)
    count_w = max(len(str(n)) for _, n, _ in path)
    lines += ["", "The shoppers' path",
              *table((name, f"{n:>{count_w}}  {note}".rstrip()) for name, n, note in path)]
    for title, keys in grouped(summary, [*FUNNEL, *_ab_keys(summary)]):
        lines += ["", title, *table((label(k), shown(k, summary[k])) for k in keys)]
    lines += _ab_table("A/B variants (views handed off to a phone)",
                       ("Views", "Hand-offs", "Handed off"), variants(summary))
    # each shopper once, whatever they viewed: the numbers to compare variants by
    lines += _ab_table("A/B variants per shopper (shown it, took it to their phone)",
                       ("Shoppers", "Took it", "Share"), shoppers(summary))
    order = [k for _, keys in grouped(summary) for k in keys]
    active = {m: hourly[m] for m in [*order, *sorted(hourly)] if m in hourly
              and not m.endswith(".sum")}
    if active:
        names = {m: label(m) for m in active}
        name_w = max(len(n) for n in names.values())
        cell = max(2, *(len(_num(v)) for vs in active.values() for v in vs))
        lines += ["", f"By hour ({zone})",
                  f"  {'':<{name_w}} " + " ".join(f"{h:02d}".rjust(cell) for h in range(24))]
        for m, values in active.items():
            lines.append(f"  {names[m]:<{name_w}} " + " ".join(
                f"{_num(v):>{cell}}" if v else f"{'.':>{cell}}" for v in values))
    return "\n".join(lines) + "\n"


def cmd_report(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.contracts.shared_settings import store_zone
    from agent.kpi import MAX_DAY, Kpis, midnight, now_day, summary

    cfg = load_config(args.config)
    zone_name = cfg.device.timezone
    tz = store_zone(zone_name)  # checked when the configuration was read
    if args.day:
        try:
            start = midnight(datetime.strptime(args.day, "%Y-%m-%d").date(), tz)
        except (ValueError, OverflowError):
            start = -1
        if not 0 <= start <= MAX_DAY:  # the days the store keeps KPIs for: after the epoch
            print(f"o2o-edge report: --day must be a date YYYY-MM-DD from 1970-01-01 to "
                  f"9999-12-31, not {args.day!r}", file=sys.stderr)
            return 2
    else:
        start = now_day(tz)
    day = datetime.fromtimestamp(start, tz).strftime("%Y-%m-%d")
    kpis = Kpis(cfg.kiosk.store_db, tz)
    try:
        hourly = kpis.day(start)
    finally:
        kpis.close()
    summ = summary(hourly)
    # a file that cannot be written is one line from the command line's OSError handler
    if args.html:
        Path(args.html).write_text(render_html(day, hourly, summ, zone_name), encoding="utf-8")
    if args.csv and args.csv != "-":
        Path(args.csv).write_text(render_csv(day, hourly, summ), encoding="utf-8")
    if args.json:
        print(json.dumps({"day": day, "timezone": zone_name, "summary": summ,
                          "hourly": hourly}, indent=2))
    elif args.csv == "-":
        sys.stdout.write(render_csv(day, hourly, summ))
    else:
        sys.stdout.write(render_text(day, hourly, summ, zone_name))
    return 0
