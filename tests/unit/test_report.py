"""`o2o-edge report` as a store manager reads it: whole numbers for counts, KPIs by name,
the store's local time, the funnel first, hourly rows named in full; a CSV a spreadsheet
opens; JSON for machines."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.cli.kpi_names import funnel, label, shown, variants
from agent.cli.report import render_csv, render_html, render_text
from agent.kpi import Kpis, midnight, summary
from tests.conftest import CLI, ROOT

BERLIN = ZoneInfo("Europe/Berlin")
DAY = "2026-10-25"  # the clocks go back in Berlin: a 25-hour day


def at(hour: int, minute: int = 0) -> float:
    return datetime(2026, 10, 25, hour, minute, tzinfo=BERLIN).timestamp()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[device]\nstore = "s1"\nid = "d1"\ntimezone = "Europe/Berlin"\n'
        f'[kiosk]\nstore_db = "{tmp_path / "store.db"}"\n'
    )
    k = Kpis(tmp_path / "store.db", BERLIN)

    def ev(t: str, when: float, data: object) -> tuple[str, float, str]:
        return (t, when, json.dumps({"data": data}))

    k.add_bodies(
        [ev("o2o.nfc.tap", at(9, 5), {})] * 3
        + [ev("o2o.nfc.tap", at(23, 30), {})]  # late: 23:30 local is 22:30 UTC
        + [ev("o2o.kiosk.view", at(10), {"page": "p"})] * 4
        + [ev("o2o.kiosk.handoff", at(10), {"page": "p"})]
        + [ev("o2o.kiosk.checkin", at(11), {"outcome": "pickup.ok"})]
        + [ev("o2o.ble.presence", at(11), {"action": "exit", "kind": "app", "dwell_s": 150})] * 2
        + [ev("o2o.kiosk.survey", at(12), {"score": s, "scale": 10}) for s in (10, 9, 2)]
        + [ev("o2o.qr.scan", at(13), {"class": "order"})] * 3
    )
    k.close()
    return cfg


def report(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "report", "--config", str(cfg), "--day", DAY, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_the_text_is_whole_numbers_and_names_in_the_stores_time(store: Path) -> None:
    res = report(store)
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert f"Store KPIs for {DAY} (times in Europe/Berlin)" in text
    counts = "\n".join(line for line in text.splitlines() if "verage" not in line)
    assert not re.search(r"\b\d+\.0\b", counts), text  # no "3.0" for a count
    assert "conversion." not in text and "survey.s10" not in text  # names, not keys
    assert re.search(r"Hand-offs to a phone +1 +25 % of views", text)
    assert re.search(r"Net Promoter Score \(NPS\) +\+33", text)  # (2 - 1) / 3
    assert re.search(r"Time in store per visit +2 min 30 s", text)
    path = text.split("The shoppers' path\n")[1].split("\n\n")[0]
    assert [line.split("  ")[1] for line in path.splitlines()] == [
        "Visits (shoppers with the app)",
        "Content views",
        "Hand-offs to a phone",
        "Check-ins",
    ]  # no till: no sales step
    hours = text.split("By hour (Europe/Berlin)\n")[1].splitlines()
    assert hours[0].split() == [f"{h:02d}" for h in range(24)]
    taps = next(line for line in hours if line.startswith("  Taps (NFC) "))
    cells = taps.split()[2:]
    assert cells[9] == "3" and cells[23] == "1"  # local hours, the late tap at 23
    assert next(line for line in hours if "Staff" in line or "Check-ins that succeeded" in line)


def test_the_csv_has_every_kpi_by_name_and_its_local_hours(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "day.csv"
    assert report(store, "--csv", str(out)).returncode == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    by = {r["kpi"]: r for r in rows}
    assert list(rows[0])[:4] == ["day", "kpi", "name", "day_value"]
    assert by["taps"]["name"] == "Taps (NFC)" and by["taps"]["day_value"] == "4"
    assert by["taps"]["09"] == "3" and by["taps"]["23"] == "1"
    assert by["nps"]["day_value"] == "33" and by["nps"]["00"] == ""
    assert {r["day"] for r in rows} == {DAY}
    assert report(store, "--csv", "-").stdout == out.read_text()


def test_json_stays_for_machines(store: Path) -> None:
    doc = json.loads(report(store, "--json").stdout)
    assert doc["day"] == DAY and doc["timezone"] == "Europe/Berlin"
    assert doc["summary"]["taps"] == 4 and doc["summary"]["nps"] == 33
    assert len(doc["hourly"]["taps"]) == 24


def test_a_file_that_cannot_be_written_is_one_line(store: Path, tmp_path: Path) -> None:
    res = report(store, "--csv", str(tmp_path / "no" / "such" / "dir.csv"))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "check the path" in res.stderr


def test_the_day_is_the_stores(store: Path) -> None:
    start = midnight(datetime(2026, 10, 25).date(), BERLIN)
    assert start == datetime(2026, 10, 24, 22, tzinfo=ZoneInfo("UTC")).timestamp()
    bad = report(store, "--day", "25.10.2026")
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr


def test_the_funnel_takes_sales_when_the_tills_report() -> None:
    summary = {
        "visits": 4,
        "views": 10,
        "handoffs": 2,
        "checkins": 1,
        "sales": 2,
        "conversion.view_to_handoff": 0.2,
        "conversion.visit_to_purchase": 0.5,
    }
    assert funnel(summary) == [
        ("Visits (shoppers with the app)", 4, ""),
        ("Content views", 10, ""),
        ("Hand-offs to a phone", 2, "20 % of views"),
        ("Check-ins", 1, ""),
        ("Sales", 2, "50 % of visits bought"),
    ]


@pytest.mark.parametrize(
    ("metric", "value", "text"),
    [
        ("taps", 3.0, "3"),
        ("taps", 12345.0, "12,345"),
        ("conversion.view_to_handoff", 0.25, "25 %"),
        ("dwell_s.average", 45.2, "45 s"),
        ("alerts.ack_s.average", 3725, "1 h 02 min"),
        ("sales.EUR.minor", 123456, "1,234.56 EUR"),
        ("sales.JPY.minor", 300, "300 JPY"),
        ("nps", -20, "-20"),
        ("nps", 0, "0"),
        ("survey.s5.average", 4, "4.0"),
    ],
)
def test_values_read_as_a_person_writes_them(metric: str, value: float, text: str) -> None:
    assert shown(metric, value) == text


def test_dynamic_names_are_words_too() -> None:
    assert label("scans.order") == "Scans: order"
    assert label("sales.EUR.minor") == "Sales total (EUR)"
    assert label("offers.redeemed.spring") == "Offers redeemed: spring"
    assert label("something.new") == "something.new"  # unknown: as it is, never cut


def test_the_html_page_has_the_funnel_and_names() -> None:
    page = render_html(
        DAY, {"taps": [1.0] * 24}, {"taps": 24, "views": 3, "<b>": 1}, "Europe/Berlin"
    )
    assert "The shoppers&#x27; path" in page or "The shoppers' path" in page
    assert "Taps (NFC)" in page and "hours Europe/Berlin" in page and "<b>" not in page


def test_ab_variants_have_their_conversion_and_a_95_percent_interval(tmp_path: Path) -> None:
    k = Kpis(tmp_path / "store.db")
    t = 1_795_000_000 // 86400 * 86400 + 3600

    def ev(etype: str, variant: object, page: object = "autumn") -> tuple[str, float, str]:
        return (etype, t, json.dumps({"data": {"page": page, "variant": variant}}))

    k.add_bodies(
        [ev("o2o.kiosk.view", "a")] * 120
        + [ev("o2o.kiosk.handoff", "a")] * 12
        + [ev("o2o.kiosk.view", "b")] * 10
        + [ev("o2o.kiosk.handoff", "b")] * 10
        + [ev("o2o.kiosk.view", "c.d"), ev("o2o.kiosk.view", 3), ev("o2o.kiosk.view", "a", "x/y")]
    )  # a variant or page that cannot name a metric counts as a view only
    k.flush()
    s = summary(k.day(t // 86400 * 86400))
    k.close()
    assert s["views"] == 133 and s["handoffs"] == 22
    assert s["ab.autumn/a.conversion"] == 0.1
    assert s["ab.autumn/a.conversion_ci95"] == [0.058, 0.167]  # Wilson, 95 %
    assert s["ab.autumn/b.conversion_ci95"] == [0.722, 1.0]  # 10 of 10: not above 100 %
    assert not [m for m in s if m.startswith("ab.") and "autumn" not in m]
    assert variants(s) == [
        ("autumn", "a", 120, 12, "10 %", "6-17 %"),
        ("autumn", "b", 10, 10, "100 %", "72-100 %"),
    ]
    text = render_text("2026-12-02", {}, s, "UTC")
    assert re.search(r"autumn +a +120 +12 +10 % +6-17 %", text)
    assert "ab." not in text
    rows = {r["kpi"]: r for r in csv.DictReader(io.StringIO(render_csv("d", {}, s)))}
    assert rows["ab.autumn/a.conversion_ci95"]["day_value"] == "0.058 - 0.167"
    assert rows["ab.autumn/a.conversion_ci95"]["name"] == (
        "Variant a of autumn: views handed off, 95 % interval"
    )
