"""A/B variants compared per shopper: the session's first view and first hand-off of a page
count the shoppers each variant was shown to and the ones who took it to their phone, with
the share's 95 % interval, beside the per-view figures; report prints both tables."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from agent.cli.kpi_names import shoppers
from agent.cli.report import render_csv, render_html, render_text
from agent.kpi import Kpis, summary, wilson

HOUR = 1_795_000_000 // 3600 * 3600


def event(kind: str, variant: str, first: bool) -> tuple[str, float, str]:
    data = {"page": "autumn", "variant": variant, **({"first": True} if first else {})}
    return (f"o2o.kiosk.{kind}", HOUR + 60.0, json.dumps({"data": data}))


def test_shoppers_per_variant(tmp_path: Path) -> None:
    k = Kpis(tmp_path / "store.db")
    # 20 shoppers see "a" three times each, 5 take it away (twice each); 10 see "b" once,
    # 6 take it away
    k.add_bodies(
        [event("view", "a", first=i % 3 == 0) for i in range(60)]
        + [event("handoff", "a", first=i % 2 == 0) for i in range(10)]
        + [event("view", "b", first=True) for _ in range(10)]
        + [event("handoff", "b", first=True) for _ in range(6)])
    k.flush()
    s = summary(k.day(HOUR // 86400 * 86400))
    k.close()
    assert (s["ab.autumn/a.views"], s["ab.autumn/a.sessions"]) == (60, 20)
    assert s["ab.autumn/a.session_conversion"] == 0.25
    assert s["ab.autumn/a.session_conversion_ci95"] == [round(x, 3) for x in wilson(5, 20)]
    assert s["ab.autumn/b.session_conversion"] == 0.6
    assert shoppers(s) == [("autumn", "a", 20, 5, "25 %", "11-47 %"),
                           ("autumn", "b", 10, 6, "60 %", "31-83 %")]
    text = render_text("2026-12-02", {}, s, "UTC")
    assert "A/B variants per shopper" in text
    assert any(line.split() == ["autumn", "a", "20", "5", "25", "%", "11-47", "%"]
               for line in text.splitlines()), text
    assert "ab." not in text
    page = render_html("2026-12-02", {}, s)
    assert "<h2>A/B variants per shopper</h2>" in page and "<td>11-47 %</td>" in page
    rows = {r["kpi"]: r for r in csv.DictReader(io.StringIO(render_csv("d", {}, s)))}
    assert rows["ab.autumn/a.sessions"]["name"] == "Variant a of autumn: shoppers shown it"
    assert rows["ab.autumn/b.session_conversion_ci95"]["name"] == (
        "Variant b of autumn: shoppers who took it, 95 % interval")
