"""Today's hourly sparkline in staff mode: one readable bar per hour, scaled to the day."""

from __future__ import annotations

from kiosk.screens.staff import BARS, sparkline


def test_a_day_scaled_to_its_busiest_hour() -> None:
    line = sparkline([0, 1, 2, 4] + [0] * 20)
    assert len(line) == 24 and line[3] == BARS[-1] and line[0] == BARS[0]
    assert line[1] < line[2] < line[3]


def test_a_quiet_day_is_a_flat_line() -> None:
    assert sparkline([0.0] * 24) == BARS[0] * 24
    assert sparkline([]) == ""
