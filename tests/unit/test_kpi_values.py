"""KPI roll-ups take events from bus clients: a value that is not a sane number is ignored and
counted, never summed into a day that `report` then cannot show."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest

from agent.errors import AgentError, Reason
from agent.kpi import MAX_DAY, Kpis, metrics_of, summary

HOUR = 1_795_000_000 // 3600 * 3600
DAY = HOUR // 86400 * 86400


def body(data: object) -> str:
    return json.dumps({"data": data})


@pytest.fixture
def kpis(tmp_path: Path) -> Kpis:
    k = Kpis(tmp_path / "store.db")
    yield k  # type: ignore[misc]
    k.close()


@pytest.mark.parametrize("data", [
    {"devices": "many"}, {"devices": float("inf")}, {"devices": float("nan")},
    {"devices": 10 ** 400}, {"devices": 1e300}, {"devices": [3]}, {"devices": True}])
def test_odd_footfall_is_ignored_and_the_rest_of_the_group_counted(
        kpis: Kpis, data: object) -> None:
    kpis.add_bodies([("o2o.ble.footfall", HOUR, body({"devices": 4})),
                     ("o2o.ble.footfall", HOUR + 60, body(data)),
                     ("o2o.nfc.tap", HOUR + 61, body({}))])
    kpis.flush()
    day = kpis.day(DAY)
    assert max(day["footfall.peak_per_min"]) == 4 and sum(day["taps"]) == 1
    assert kpis.ignored == 1


def test_sums_that_would_overflow_stay_finite(kpis: Kpis) -> None:
    exit_ = body({"action": "exit", "kind": "app", "dwell_s": 1e308})
    kpis.add_bodies([("o2o.ble.presence", HOUR, exit_)] * 2
                    + [("o2o.kiosk.survey", HOUR, body({"score": float("inf")})),
                       ("o2o.ble.presence", HOUR, body({"action": "exit", "kind": "app",
                                                        "dwell_s": 30}))])
    kpis.flush()
    s = summary(kpis.day(DAY))
    assert s["visits"] == 1 and s["dwell_s.average"] == 30
    assert kpis.ignored == 3
    json.dumps(s, allow_nan=False)  # what report and the bus answer print


def test_a_scan_class_is_a_short_token_or_other(kpis: Kpis) -> None:
    kpis.add_bodies([("o2o.qr.scan", HOUR, body({"class": "x" * 5000})),
                     ("o2o.qr.scan", HOUR, body({"class": {"a": 1}})),
                     ("o2o.qr.scan", HOUR, body({"class": "order"}))])
    kpis.flush()
    day = kpis.day(DAY)
    assert sum(day["scans.other"]) == 2 and sum(day["scans.order"]) == 1
    assert not [m for m in day if len(m) > 40]


@pytest.mark.parametrize(("event_type", "data", "what"), [
    ("o2o.kiosk.survey", {"score": "ten"}, "score is not a number"),
    ("o2o.ble.footfall", {"devices": 10 ** 400}, "devices is too large"),
    ("o2o.ble.presence", {"action": "exit", "kind": "app", "dwell_s": float("nan")},
     "not a finite count")])
def test_a_value_that_cannot_be_added_up_is_an_agent_error_naming_it(
        event_type: str, data: object, what: str) -> None:
    """Under the package's one root: a caller catching AgentError sees it, with its reason."""
    with pytest.raises(AgentError, match=what) as raised:
        metrics_of(event_type, data)
    assert raised.value.reason is Reason.INVALID_EVENT


@pytest.mark.parametrize("day", [-1, MAX_DAY + 1, 10 ** 30, True, "2026-01-01", 1.5])
def test_a_day_out_of_range_is_refused_saying_so(kpis: Kpis, day: object) -> None:
    with pytest.raises(AgentError, match="day must be"):
        kpis.day(day)  # type: ignore[arg-type]


def test_values_stored_before_the_checks_do_not_break_the_day(tmp_path: Path) -> None:
    k = Kpis(tmp_path / "store.db")
    k.close()
    db = sqlite3.connect(tmp_path / "store.db")
    db.executemany("INSERT INTO kpi_hourly VALUES (?, ?, ?)",
                   [(HOUR, "dwell_s.sum", math.inf), (HOUR, "visits", 2.0)])
    db.commit()
    db.close()
    k = Kpis(tmp_path / "store.db")
    try:
        s = summary(k.day(DAY))
        assert s["visits"] == 2
        json.dumps(s, allow_nan=False)
    finally:
        k.close()


def test_the_kiosks_0_to_10_survey_counts_for_the_nps() -> None:
    # the kiosk names the 0-10 scale as its bundle does, by its 11 choices
    for score, kind in ((10, "promoters"), (3, "detractors")):
        got = dict(metrics_of("o2o.kiosk.survey", {"score": score, "scale": 11,
                                                   "after": "browse"}))
        assert got[f"survey.s10.{kind}"] == 1.0 and got["survey.s10.answers"] == 1.0
    with pytest.raises(AgentError, match="not on the 0-10 scale"):
        metrics_of("o2o.kiosk.survey", {"score": 11, "scale": 11})
