"""KPIs a marketer can trust: the NPS beside the averages per survey scale, visits from opted-in
app presence only, staff reader tests apart, and days and hours in the store's time zone,
right on the days the clocks change."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.contracts.shared_settings import store_zone
from agent.errors import AgentError
from agent.kpi import Kpis, metrics_of, midnight, now_day, nps, summary
from tests.conftest import CLI, ROOT

T0 = 1_795_000_000 // 86400 * 86400  # a UTC midnight


def body(data: object) -> str:
    return json.dumps({"data": data})


@pytest.fixture
def kpis(tmp_path: Path) -> Iterator[Kpis]:
    k = Kpis(tmp_path / "store.db")
    yield k
    k.close()


def day_summary(k: Kpis, events: list[tuple[str, object]]) -> dict[str, object]:
    k.add_bodies([(t, T0 + 3600 + i, body(d)) for i, (t, d) in enumerate(events)])
    k.flush()
    return summary(k.day(T0))


def survey(score: int, scale: int = 10) -> tuple[str, object]:
    return ("o2o.kiosk.survey", {"score": score, "scale": scale, "after": "checkin"})


def test_nps_is_promoters_minus_detractors_beside_each_scales_average(kpis: Kpis) -> None:
    # 0-10: 10 10 10 9 9 promote, 8 7 are passive, 6 3 0 detract: (5 - 3) / 10 = 20
    tens = [survey(s) for s in (10, 10, 10, 9, 9, 8, 7, 6, 3, 0)]
    stars = [survey(s, 5) for s in (5, 4, 3)]
    s = day_summary(kpis, tens + stars)
    assert s["nps"] == 20
    assert s["survey.s10.average"] == 7.2 and s["survey.s5.average"] == 4.0
    assert s["survey.s10.answers"] == 10 and s["survey.s5.answers"] == 3
    assert s["survey.answers"] == 13
    assert "survey.average" not in s  # stars and 0-10 scores do not average together


def test_one_scale_keeps_the_days_average_and_stars_give_no_nps(kpis: Kpis) -> None:
    s = day_summary(kpis, [survey(5, 5), survey(2, 5)])
    assert s["survey.average"] == s["survey.s5.average"] == 3.5
    assert "nps" not in s


@pytest.mark.parametrize(
    ("promoters", "detractors", "answers", "expected"),
    [(1, 0, 8, 13), (0, 1, 8, -13), (3, 0, 3, 100), (0, 3, 3, -100), (1, 2, 3, -33), (2, 2, 7, 0)],
)
def test_nps_is_a_whole_percent_rounded_half_away_from_zero(
    promoters: int, detractors: int, answers: int, expected: int
) -> None:
    assert nps(promoters, detractors, answers) == expected


@pytest.mark.parametrize(("score", "scale"), [(11, 10), (-1, 10), (0, 5), (6, 5)])
def test_a_score_off_its_scale_is_refused(score: int, scale: int) -> None:
    with pytest.raises(AgentError, match="not on the"):
        metrics_of("o2o.kiosk.survey", {"score": score, "scale": scale})


def test_visits_are_app_presence_and_the_stores_beacons_are_ignored(kpis: Kpis) -> None:
    s = day_summary(
        kpis,
        [
            ("o2o.ble.presence", {"action": "exit", "kind": "app", "dwell_s": 600}),
            ("o2o.ble.presence", {"action": "exit", "kind": "app", "dwell_s": 300}),
            # the store's own beacon going out of range and back: no shopper, no dwell
            ("o2o.ble.presence", {"action": "exit", "kind": "beacon", "dwell_s": 86000}),
            ("o2o.ble.presence", {"action": "exit", "dwell_s": 5000}),  # no kind: not an app
            ("o2o.ble.presence", {"action": "enter", "kind": "app"}),
        ],
    )
    assert s["visits"] == 2 and s["dwell_s.average"] == 450


def test_staff_reader_tests_are_counted_apart_from_shoppers(kpis: Kpis) -> None:
    s = day_summary(
        kpis,
        [
            ("o2o.nfc.tap", {"tag": {}}),
            ("o2o.nfc.tap", {"tag": {}, "staff_test": True}),
            ("o2o.qr.scan", {"class": "order"}),
            ("o2o.qr.scan", {"class": "order", "staff_test": True}),
            ("o2o.qr.scan", {"class": "text", "staff_test": True}),
        ],
    )
    assert s["taps"] == 1 and s["scans"] == 1 and s["scans.order"] == 1
    assert s["taps.staff_test"] == 1 and s["scans.staff_test"] == 2


def local(zone: str, *when: int) -> float:
    return datetime(*when, tzinfo=ZoneInfo(zone)).timestamp()  # type: ignore[misc]


# (zone, the day the clocks go forward, the day they go back, the repeated hour)
DST = [
    ("Europe/Berlin", (2026, 3, 29), (2026, 10, 25), 2),
    ("America/New_York", (2026, 3, 8), (2026, 11, 1), 1),
]


@pytest.mark.parametrize(("zone", "forward", "back", "repeated"), DST, ids=[z[0] for z in DST])
def test_days_and_hours_follow_the_store_zone_across_dst(
    tmp_path: Path,
    zone: str,
    forward: tuple[int, int, int],
    back: tuple[int, int, int],
    repeated: int,
) -> None:
    tz = ZoneInfo(zone)
    k = Kpis(tmp_path / "store.db", tz)
    try:
        for day in (forward, back):
            start = midnight(datetime(*day).date(), tz)
            end = midnight(datetime.fromtimestamp(start + 30 * 3600, tz).date(), tz)
            # a tap every UTC hour from an hour before the local day to an hour after it
            k.add_bodies(
                [("o2o.nfc.tap", t + 1800, body({})) for t in range(start - 3600, end + 3600, 3600)]
            )
        k.flush()
        spring = k.day(int(midnight(datetime(*forward).date(), tz)))["taps"]
        assert sum(spring) == 23  # a 23-hour day: neither neighbour's hour counts
        assert spring[2] == 0 and spring[1] == spring[3] == 1  # 02:00-02:59 never happened
        autumn = k.day(int(local(zone, *back, 12)))["taps"]  # any second of the day names it
        assert sum(autumn) == 25
        assert autumn[repeated] == 2  # the hour the clock went through twice
        assert autumn.count(1) == 23
        # the tap half an hour before local midnight is the evening before's
        k.add_bodies([("o2o.nfc.tap", local(zone, *back, 23, 30), body({}))])
        k.flush()
        assert k.day(int(local(zone, *back, 0)))["taps"][23] == 2
    finally:
        k.close()


def test_a_zone_off_the_utc_hour_counts_in_its_own_hours(tmp_path: Path) -> None:
    tz = ZoneInfo("Asia/Kolkata")  # UTC+05:30
    k = Kpis(tmp_path / "store.db", tz)
    try:
        k.add_bodies(
            [
                ("o2o.nfc.tap", local("Asia/Kolkata", 2026, 6, 1, 0, 10), body({})),
                ("o2o.nfc.tap", local("Asia/Kolkata", 2026, 5, 31, 23, 50), body({})),
            ]
        )
        k.flush()
        june = k.day(int(local("Asia/Kolkata", 2026, 6, 1)))["taps"]
        may = k.day(int(local("Asia/Kolkata", 2026, 5, 31)))["taps"]
        assert june[0] == 1 and sum(june) == 1 and may[23] == 1 and sum(may) == 1
    finally:
        k.close()


def test_today_is_the_stores_date() -> None:
    tz = ZoneInfo("America/New_York")
    # 02:00 UTC on 2 June is still 1 June in New York
    at = datetime(2026, 6, 2, 2, tzinfo=ZoneInfo("UTC")).timestamp()
    assert now_day(tz, at) == local("America/New_York", 2026, 6, 1)
    assert now_day(now=at) == datetime(2026, 6, 2, tzinfo=ZoneInfo("UTC")).timestamp()


@pytest.mark.parametrize("name", ["Mars/Olympus", "../../etc/passwd", "", "europe/berlin "])
def test_config_check_refuses_a_zone_it_cannot_name_in_one_line(tmp_path: Path, name: str) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[device]\nstore = "s1"\nid = "d1"\ntimezone = {json.dumps(name)}\n')
    res = subprocess.run(
        [*CLI, "config", "check", "--config", str(cfg)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "[device] timezone" in res.stderr and "Europe/Berlin" in res.stderr


def test_a_zone_config_check_takes_is_the_one_the_kpis_use() -> None:
    assert store_zone("UTC") is UTC
    assert store_zone("America/New_York") == ZoneInfo("America/New_York")
    with pytest.raises(ValueError, match="IANA time zone"):
        store_zone("Mars/Olympus")
