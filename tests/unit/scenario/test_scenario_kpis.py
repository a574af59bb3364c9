"""The KPIs worked out from a scenario file: the till's day and the full store day."""

from __future__ import annotations

from pathlib import Path

from simulators.scenario.kpis import expected_kpis, fixed_part
from simulators.scenario.model import load

SCENARIOS = Path(__file__).resolve().parents[3] / "simulators" / "scenarios"


def test_the_tills_day() -> None:
    # two receipts (one sent twice, counted once), one code redeemed, its second use refused
    assert expected_kpis(load(SCENARIOS / "till_sale.toml")) == {
        "scans": 1, "scans.offer": 1, "sales": 2, "sales.EUR": 2, "sales.EUR.minor": 1700,
        "offers.redeemed": 1, "offers.redeemed.spring-coffee": 1,
        "offers.refused": 1}


def test_the_full_day_counts_only_what_its_faults_leave() -> None:
    kpis = expected_kpis(load(SCENARIOS / "store_day.toml"))
    # a tap on the unplugged reader is never read; codes shown to a camera that is gone are
    # typed instead (check-ins still) or never seen
    assert kpis["taps"] >= 1 and kpis["checkins"] >= kpis["checkins.ok"] >= 1
    assert kpis["scans"] == sum(v for k, v in kpis.items() if k.startswith("scans."))


def test_only_the_fixed_families_of_a_report_are_compared() -> None:
    summary = {"taps": 3, "taps.staff_test": 1, "views": 9, "visits": 2, "alerts": 4,
               "survey.average": 4.0, "conversion.view_to_handoff": 0.5, "sales.visit": 1}
    assert fixed_part(summary) == {"taps": 3, "taps.staff_test": 1, "survey.average": 4.0}
