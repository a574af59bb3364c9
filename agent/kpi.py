"""Local KPIs: hourly roll-ups of what the store's touchpoints did, kept in the store's
SQLite so they survive restarts and the outbox draining.

Counted from committed events (the commit hook adds up in memory what agent/kpi_metrics.py
says each adds; a flush every few seconds writes them): taps, scans by class (a staff
member's reader test apart), check-ins and successful ones, content views and hand-offs (the
conversion), survey answers per scale (the 0-10 scale's promoters and detractors for the
NPS), visits (opted-in app presence, from enter to exit, and their dwell; the store's own
beacons are no visit), peak anonymous footfall per minute, staff alerts and their response
times (raised -> acknowledged -> closed), and the tills' sales (count, amount and average
order value per currency, the share of visits that bought), the sales of visits that checked
in a pickup (add-on sales, and the share of pickups that bought more), refunds and offer
redemptions per campaign.
`o2o-edge report` prints a day and can write an HTML page.
Hours and days are the store's (`[device] timezone`): an event counts in the local hour it
happened in, a day runs from local midnight to local midnight (23 or 25 hours on a DST day;
the hour a clock goes back through twice adds up under its one name).
The roll-ups are the KPI table group of the store database (agent/storedb/ owns the file
and its schema: kpi_hourly).
"""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Final

from agent.errors import AgentError, Reason
from agent.kpi_metrics import SCALES, TYPES, BadValue, metrics_of
from agent.localdb import retry_when_full
from agent.repeat_visits import RepeatVisits
from agent.storedb import Repository, StoreDatabase

# the days `day()` answers: 1970-01-01 to 9999-12-31 (what a date can show)
MAX_DAY: Final = 253402214400
Z95: Final = 1.959964  # the normal quantile of a two-sided 95 % interval


def hour_of(created: float, tz: tzinfo) -> int:
    """The epoch second the local hour holding `created` began (a zone 30 or 45 minutes off
    UTC starts its hours off the UTC hour)."""
    if tz is UTC:
        return int(created // 3600 * 3600)
    local = datetime.fromtimestamp(created, tz)
    return int(created // 1) - local.minute * 60 - local.second


def midnight(day: date, tz: tzinfo) -> int:
    """The epoch second a local day begins (where midnight does not exist, the moment the
    clock jumped past it)."""
    return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())


def now_day(tz: tzinfo = UTC, now: float | None = None) -> int:
    """The epoch second today (local) began."""
    return midnight(datetime.fromtimestamp(time.time() if now is None else now, tz).date(), tz)


class Kpis(Repository):
    def __init__(self, store: Path | StoreDatabase, tz: tzinfo = UTC,
                 repeat: RepeatVisits | None = None) -> None:
        """`repeat`: tells an app's visit that is a repeat (the running agent's; a report
        only reads)."""
        super().__init__(store)
        self.tz = tz  # the store's: hours and days are local
        self.repeat = repeat
        # app visits ended, (hour, app, when) until the next flush asks `repeat` about them
        self._exits: list[tuple[int, str, float]] = []
        self._lock = threading.Lock()  # the pending counts (the owner locks the connection)
        self._pending: dict[tuple[int, str], float] = {}
        self._peaks: dict[tuple[int, str], float] = {}
        self.ignored = 0  # events whose values could not be added up (BadValue)

    def add_bodies(self, items: list[tuple[str, float, str]]) -> None:
        """(type, created, body) of committed events; called from the writer thread."""
        for etype, created, body in items:
            if etype not in TYPES:
                continue
            try:
                data = json.loads(body).get("data")
                hour = hour_of(created, self.tz)
                pairs = metrics_of(etype, data)
            except (BadValue, ValueError, AttributeError, TypeError, OverflowError,
                    RecursionError):
                self.ignored += 1  # one odd event: the rest of the group is still counted
                continue
            with self._lock:
                if pairs and pairs[0][0] == "visits" and self.repeat is not None \
                        and isinstance(data.get("id"), str):
                    self._exits.append((hour, data["id"], created))
                for metric, amount in pairs:
                    key = (hour, metric)
                    if metric.endswith("peak_per_min"):
                        self._peaks[key] = max(self._peaks.get(key, 0.0), amount)
                    else:
                        self._pending[key] = self._pending.get(key, 0.0) + amount

    def _repeats(self) -> None:
        """The visits ended since the last flush that were repeats, counted by their hour."""
        with self._lock:
            exits, self._exits = self._exits, []
        if not exits or self.repeat is None:
            return
        try:
            repeats = self.repeat.seen([(app, at) for _, app, at in exits])
        except BaseException:
            with self._lock:  # asked again with the next flush
                self._exits[:0] = exits
            raise
        with self._lock:
            for (hour, _, _), repeat in zip(exits, repeats, strict=True):
                if repeat:
                    key = (hour, "visits.repeat")
                    self._pending[key] = self._pending.get(key, 0.0) + 1.0

    @retry_when_full
    def flush(self) -> int:
        self._repeats()
        with self._lock:
            pending, self._pending = self._pending, {}
            peaks, self._peaks = self._peaks, {}
        if not pending and not peaks:
            return 0
        try:
            with self._store.writing() as db:
                db.executemany(
                    "INSERT INTO kpi_hourly VALUES (?, ?, ?) ON CONFLICT(hour, metric) DO "
                    "UPDATE SET value = value + excluded.value",
                    [(h, m, v) for (h, m), v in pending.items()])
                db.executemany(
                    "INSERT INTO kpi_hourly VALUES (?, ?, ?) ON CONFLICT(hour, metric) DO "
                    "UPDATE SET value = max(value, excluded.value)",
                    [(h, m, v) for (h, m), v in peaks.items()])
        except BaseException:
            with self._lock:  # not written: counted again with the next flush
                for key, amount in pending.items():
                    self._pending[key] = self._pending.get(key, 0.0) + amount
                for key, amount in peaks.items():
                    self._peaks[key] = max(self._peaks.get(key, 0.0), amount)
            raise
        return len(pending) + len(peaks)

    def today(self) -> int:
        return now_day(self.tz)

    def day(self, day_start: int) -> dict[str, list[float]]:
        """Metric -> 24 values by local hour (00 to 23) for the store's day holding the epoch
        second `day_start` (its midnight, usually). On the day a clock goes back the repeated
        hour adds up under its name; on the day it goes forward the skipped hour stays 0."""
        if isinstance(day_start, bool) or not isinstance(day_start, int) \
                or not 0 <= day_start <= MAX_DAY:
            raise AgentError(Reason.BUS_PROTOCOL,
                             f"day must be the epoch second of a day between 1970 and "
                             f"9999, not {str(day_start)[:40]!r}")
        local = datetime.fromtimestamp(day_start, self.tz).date()
        start = midnight(local, self.tz)
        try:
            end = midnight(local + timedelta(days=1), self.tz)
        except OverflowError:  # 9999-12-31: the last day a date can show
            end = start + 86400
        with self._store.reading() as db:
            rows = db.execute("SELECT hour, metric, value FROM kpi_hourly WHERE "
                              "hour >= ? AND hour < ?", (start, end)).fetchall()
        out: dict[str, list[float]] = {}
        for hour, metric, value in rows:
            if not math.isfinite(value):  # written before values were checked: not a count
                continue
            at = datetime.fromtimestamp(hour, self.tz).hour
            values = out.setdefault(metric, [0.0] * 24)
            if metric.endswith("peak_per_min"):
                values[at] = max(values[at], value)
            else:
                values[at] += value
        return out

    @retry_when_full
    def retention_sweep(self, cutoff: float) -> dict[str, int]:
        """Hours that began before `cutoff`."""
        with self._store.writing() as db:
            n = db.execute("DELETE FROM kpi_hourly WHERE hour < ?", (cutoff,)).rowcount
        return {"kpi_hourly": n}

    def erase_rows_of(self, subject: str) -> dict[str, int]:
        """Nothing: roll-ups are counts, they name nobody."""
        return {}

    def close(self) -> None:
        """Write what is pending; give the database back if this opened it."""
        try:
            self.flush()
        finally:
            super().close()


def summary(day: dict[str, list[float]]) -> dict[str, Any]:
    total = {m: sum(v) for m, v in day.items()}
    out: dict[str, Any] = {m: round(v, 2) for m, v in sorted(total.items())
                           if not m.endswith((".sum", "peak_per_min"))}
    if total.get("views"):
        out["conversion.view_to_handoff"] = round(total.get("handoffs", 0) / total["views"], 3)
    scales = [n for n in SCALES if total.get(f"survey.s{n}.answers")]
    if total.get("survey.answers") and len(scales) <= 1:  # one scale: its average is the day's
        out["survey.average"] = round(total.get("survey.sum", 0.0) / total["survey.answers"],
                                      2)
    for n in scales:
        answers = total[f"survey.s{n}.answers"]
        out[f"survey.s{n}.average"] = round(total.get(f"survey.s{n}.sum", 0.0) / answers, 2)
    if total.get("survey.s10.answers"):
        out["nps"] = nps(total.get("survey.s10.promoters", 0.0),
                         total.get("survey.s10.detractors", 0.0), total["survey.s10.answers"])
    if total.get("visits"):
        if "visits.repeat" in total:  # where the agent tells repeats (not every kiosk day)
            out["conversion.visit_repeat"] = round(
                min(total["visits.repeat"], total["visits"]) / total["visits"], 3)
        out["dwell_s.average"] = round(total.get("dwell_s.sum", 0.0) / total["visits"], 1)
    if total.get("alerts.acknowledged"):
        out["alerts.ack_s.average"] = round(
            total.get("alerts.ack_s.sum", 0.0) / total["alerts.acknowledged"], 1)
    if total.get("alerts.closed_after_ack"):
        out["alerts.close_s.average"] = round(
            total.get("alerts.close_s.sum", 0.0) / total["alerts.closed_after_ack"], 1)
    # amounts in the currency's minor units (cents; a yen is its own minor unit)
    for metric, value in total.items():
        if metric.startswith(("sales.", "refunds.", "pickup_addon.")) \
                and metric.endswith(".minor.sum"):
            kind, cur = metric.split(".")[:2]
            out[f"{kind}.{cur}.minor"] = int(value)
            if kind == "sales" and total.get(f"sales.{cur}"):
                out[f"aov.{cur}.minor"] = round(value / total[f"sales.{cur}"])
    if total.get("visits") and "sales.visit" in total:
        out["conversion.visit_to_purchase"] = round(total["sales.visit"] / total["visits"], 3)
    if total.get("checkins.pickup") and "sales" in total:  # where the tills report
        # a shopper may buy twice while collecting: a share, at most all of them
        out["conversion.pickup_to_addon"] = round(
            min(total.get("pickup_addon", 0.0), total["checkins.pickup"])
            / total["checkins.pickup"], 3)
    for metric, views in total.items():
        if metric.startswith("ab.") and metric.endswith(".views") and views:
            test = metric.removesuffix(".views")
            handoffs = min(total.get(f"{test}.handoffs", 0.0), views)
            out[f"{test}.conversion"] = round(handoffs / views, 3)
            out[f"{test}.conversion_ci95"] = [round(x, 3) for x in wilson(handoffs, views)]
        if metric.startswith("ab.") and metric.endswith(".sessions") and views:
            test = metric.removesuffix(".sessions")
            took = min(total.get(f"{test}.sessions_handed_off", 0.0), views)
            out[f"{test}.session_conversion"] = round(took / views, 3)
            out[f"{test}.session_conversion_ci95"] = [round(x, 3) for x in wilson(took, views)]
    if "footfall.peak_per_min" in day:
        out["footfall.peak_per_min"] = max(day["footfall.peak_per_min"])
    return out


def wilson(successes: float, trials: float, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion: right at 0 %, 100 % and small counts, where
    the normal approximation says -5 % or 104 %."""
    p = successes / trials
    scale = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / scale
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / scale
    return max(0.0, centre - half), min(1.0, centre + half)


def nps(promoters: float, detractors: float, answers: float) -> int:
    """Net Promoter Score: the share of promoters (9-10) minus that of detractors (0-6), in
    whole percent (-100 to 100), rounded half away from zero."""
    score = 100 * (promoters - detractors) / answers
    return int(math.copysign(math.floor(abs(score) + 0.5), score))
