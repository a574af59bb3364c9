"""Local KPIs: hourly roll-ups of what the store's touchpoints did, kept in the store's
SQLite so they survive restarts and the outbox draining.

Counted from committed events (the commit hook adds up in memory; a flush every few seconds
writes them): taps, scans by class (a staff member's reader test apart), check-ins and
successful ones, content views and hand-offs (the conversion), survey answers per scale (the
0-10 scale's promoters and detractors for the NPS), visits (opted-in app presence, from enter
to exit, and their dwell; the store's own beacons are no visit), peak anonymous footfall per
minute, staff alerts and their response times (raised ->
acknowledged -> closed), and the tills' sales (count, amount and average order value per
currency, the share of visits that bought), the sales of visits that checked in a pickup
(add-on sales, and the share of pickups that bought more), refunds and offer redemptions
per campaign.
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
import re
import threading
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Final

from agent.contracts.events import (
    BLE_FOOTFALL,
    BLE_PRESENCE,
    KIOSK_CHECKIN,
    KIOSK_HANDOFF,
    KIOSK_SURVEY,
    KIOSK_VIEW,
    NFC_TAP,
    OFFER_REDEEMED,
    OFFER_REFUSED,
    POS_REFUND,
    POS_SALE,
    QR_SCAN,
    STAFF_ALERT,
    STAFF_ALERT_ACKNOWLEDGED,
    STAFF_ALERT_CLOSED,
    STAFF_ALERT_ESCALATED,
)
from agent.errors import AgentError, Reason
from agent.localdb import retry_when_full
from agent.repeat_visits import RepeatVisits
from agent.storedb import Repository, StoreDatabase

# Events come from bus clients too: an amount that is not a number, not finite or beyond any
# real count (a dwell of 30 years, a billion devices in a minute) is ignored and counted,
# never summed into a day that `report` then cannot show.
MAX_AMOUNT: Final = 1e9
# a scan's class becomes part of a metric's name: a short token, or "other"
_CLASS_RE: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
# the days `day()` answers: 1970-01-01 to 9999-12-31 (what a date can show)
MAX_DAY: Final = 253402214400
# a currency and a campaign become part of a metric's name too
_CURRENCY_RE: Final = re.compile(r"[A-Z]{3}")
_CAMPAIGN_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_VARIANT_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")  # no dot: the name's end
Z95: Final = 1.959964  # the normal quantile of a two-sided 95 % interval
# survey scales the kiosk asks on (a bundle's survey.scale): 1-5 stars, or 0-10, the NPS scale
SCALES: Final = {5: (1, 5), 10: (0, 10)}
NPS_SCALE: Final = 10
NPS_CHOICES: Final = 11  # a bundle's survey.scale for 0-10, which the kiosk's answers carry
PROMOTER_MIN: Final = 9  # 9 and 10 promote; 0 to 6 detract (7 and 8 are passive)
DETRACTOR_MAX: Final = 6
SUCCESS = {"pickup.ok", "pickup.ready", "appointment.ok", "loyalty.ok"}
PICKED_UP = ("pickup.ok", "pickup.ready")  # a pickup check-in confirmed (attribution.py too)
TYPES = {NFC_TAP, QR_SCAN, KIOSK_CHECKIN, KIOSK_VIEW, KIOSK_HANDOFF, KIOSK_SURVEY,
         BLE_PRESENCE, BLE_FOOTFALL, POS_SALE, POS_REFUND, OFFER_REDEEMED, OFFER_REFUSED,
         STAFF_ALERT, STAFF_ALERT_ACKNOWLEDGED, STAFF_ALERT_CLOSED, STAFF_ALERT_ESCALATED}


class BadValue(AgentError):
    """An event's value that a roll-up cannot add up (the event is ignored and counted)."""

    def __init__(self, message: str) -> None:
        super().__init__(Reason.INVALID_EVENT, message)


def _amount(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadValue(f"{what} is not a number")
    try:
        amount = float(value)
    except OverflowError:  # an int beyond any float
        raise BadValue(f"{what} is too large") from None
    if not math.isfinite(amount) or abs(amount) > MAX_AMOUNT:
        raise BadValue(f"{what} is not a finite count")
    return amount


def metrics_of(event_type: str, data: Any) -> Sequence[tuple[str, float]]:
    """The (metric, amount) pairs one event adds to its hour; BadValue for a value that is
    not a sane number."""
    d = data if isinstance(data, dict) else {}
    if event_type == NFC_TAP:
        return [("taps.staff_test", 1)] if d.get("staff_test") is True else [("taps", 1)]
    if event_type == QR_SCAN:
        if d.get("staff_test") is True:  # a reader test in staff mode: no shopper scanned
            return [("scans.staff_test", 1)]
        cls = d.get("class", "unknown")
        if not isinstance(cls, str) or not _CLASS_RE.fullmatch(cls):
            cls = "other"
        return [("scans", 1), (f"scans.{cls}", 1)]
    if event_type == KIOSK_CHECKIN:
        ok = d.get("outcome") in SUCCESS
        pickup = d.get("kind") == "pickup" and d.get("outcome") in PICKED_UP
        return [("checkins", 1.0), *([("checkins.ok", 1.0)] if ok else []),
                *([("checkins.pickup", 1.0)] if pickup else [])]
    if event_type == KIOSK_VIEW:
        if d.get("personalised") is True:  # a home-screen offer for one app: no page viewed
            return [("offers.personal", 1)]
        return [("views", 1), *_variant(d, "views")]
    if event_type == KIOSK_HANDOFF:
        return [("handoffs", 1), *_variant(d, "handoffs")]
    if event_type == KIOSK_SURVEY and "score" in d:
        return _survey_metrics(d)
    if event_type == BLE_PRESENCE and d.get("action") == "exit" and d.get("kind") == "app":
        return [("visits", 1), ("dwell_s.sum", _amount(d.get("dwell_s") or 0, "dwell_s"))]
    if event_type == BLE_FOOTFALL:
        return [("footfall.peak_per_min", _amount(d.get("devices") or 0, "devices"))]
    if event_type in (POS_SALE, POS_REFUND, OFFER_REDEEMED, OFFER_REFUSED):
        return _till_metrics(event_type, d)
    return _staff_metrics(event_type, d)


def _variant(d: dict[str, Any], what: str) -> list[tuple[str, float]]:
    """A page shown in an A/B test names its variant: views and hand-offs per page and
    variant ("ab.<page>/<variant>.views"), for the conversion of each; and the shopper
    sessions it was shown to and that took it away (the session's first view or hand-off
    of the page), the unit to compare variants by: one shopper's views are no independent
    trials."""
    page, variant = d.get("page"), d.get("variant")
    if not (isinstance(page, str) and _CAMPAIGN_RE.fullmatch(page)
            and isinstance(variant, str) and _VARIANT_RE.fullmatch(variant)):
        return []
    out = [(f"ab.{page}/{variant}.{what}", 1.0)]
    if d.get("first") is True:
        out.append((f"ab.{page}/{variant}.{_SESSIONS[what]}", 1.0))
    return out


_SESSIONS: Final = {"views": "sessions", "handoffs": "sessions_handed_off"}


def _survey_metrics(d: dict[str, Any]) -> Sequence[tuple[str, float]]:
    """All answers (their average is the day's when one scale was asked), and per scale:
    answers, their sum, and on the 0-10 scale promoters and detractors. An answer without a
    known scale (older kiosks) counts in the first two only."""
    score = _amount(d["score"], "score")
    out = [("survey.answers", 1.0), ("survey.sum", score)]
    scale = d.get("scale")
    if scale == NPS_CHOICES and not isinstance(scale, bool):
        scale = NPS_SCALE  # the kiosk names the 0-10 scale as its bundle does: 11 choices
    if isinstance(scale, bool) or scale not in SCALES:
        return out
    low, high = SCALES[scale]
    if not low <= score <= high:
        raise BadValue(f"score {score:g} is not on the {low}-{high} scale")
    out += [(f"survey.s{scale}.answers", 1.0), (f"survey.s{scale}.sum", score)]
    if scale == NPS_SCALE:
        if score >= PROMOTER_MIN:
            out.append(("survey.s10.promoters", 1.0))
        elif score <= DETRACTOR_MAX:
            out.append(("survey.s10.detractors", 1.0))
    return out


def _till_metrics(event_type: str, d: dict[str, Any]) -> Sequence[tuple[str, float]]:
    """Sales and refunds per currency (amounts in minor units), sales of a visit (for the
    visit -> purchase conversion), redemptions per campaign."""
    if event_type in (POS_SALE, POS_REFUND):
        currency = d.get("currency")
        cur = currency if isinstance(currency, str) and _CURRENCY_RE.fullmatch(currency) \
            else "other"
        kind = "sales" if event_type == POS_SALE else "refunds"
        out = [(kind, 1.0), (f"{kind}.{cur}", 1.0),
               (f"{kind}.{cur}.minor.sum", _amount(d.get("total"), "total"))]
        if event_type == POS_SALE and d.get("visit"):
            out.append(("sales.visit", 1.0))
        if event_type == POS_SALE and d.get("visit_pickup") is True:  # attribution.py
            out += [("pickup_addon", 1.0), (f"pickup_addon.{cur}.minor.sum", out[2][1])]
        return out
    campaign = d.get("campaign")
    name = campaign if isinstance(campaign, str) and _CAMPAIGN_RE.fullmatch(campaign) \
        else "other"
    if event_type == OFFER_REDEEMED:
        return [("offers.redeemed", 1.0), (f"offers.redeemed.{name}", 1.0)]
    return [("offers.refused", 1.0)]


def _staff_metrics(event_type: str, d: dict[str, Any]) -> Sequence[tuple[str, float]]:
    """Staff alerts and how fast the store answered them: raised -> acknowledged, and
    acknowledged -> closed (an alert closed without an ack has no second time)."""
    if event_type == STAFF_ALERT:
        return [("alerts", 1)]
    if event_type == STAFF_ALERT_ESCALATED:
        return [("alerts.escalated", 1)]
    if event_type == STAFF_ALERT_ACKNOWLEDGED:
        return [("alerts.acknowledged", 1),
                ("alerts.ack_s.sum", _amount(d.get("response_s"), "response_s"))]
    if event_type == STAFF_ALERT_CLOSED:
        if d.get("response_s") is None:
            return [("alerts.closed", 1)]
        return [("alerts.closed", 1), ("alerts.closed_after_ack", 1),
                ("alerts.close_s.sum", _amount(d["response_s"], "response_s"))]
    return []


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
