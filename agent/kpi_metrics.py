"""Which KPI roll-ups one committed event adds to its hour (agent/kpi.py adds them up): the
metrics of taps, scans, check-ins, content views and hand-offs (per A/B variant, and per
shopper session), survey answers per scale, visits, footfall, the tills' sales and offers,
and staff alerts. A value that is not a sane number is a BadValue: the event is ignored and
counted, never summed into a day that `report` then cannot show.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
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

# Events come from bus clients too: an amount that is not a number, not finite or beyond any
# real count (a dwell of 30 years, a billion devices in a minute) is ignored and counted,
# never summed into a day that `report` then cannot show.
MAX_AMOUNT: Final = 1e9
# a scan's class becomes part of a metric's name: a short token, or "other"
_CLASS_RE: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
# a currency and a campaign become part of a metric's name too
_CURRENCY_RE: Final = re.compile(r"[A-Z]{3}")
_CAMPAIGN_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_VARIANT_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")  # no dot: the name's end
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
