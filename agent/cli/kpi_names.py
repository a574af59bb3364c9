"""What `o2o-edge report` calls a KPI and how it writes its value for a store manager: a name
in words (not "conversion.view_to_handoff"), counts as whole numbers, shares in percent,
times in minutes and seconds, money in the currency's units; and the groups the report
prints them in, the shoppers' funnel first."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

LABELS: Final[dict[str, str]] = {
    "visits": "Visits (shoppers with the app)",
    "views": "Content views",
    "handoffs": "Hand-offs to a phone",
    "checkins": "Check-ins",
    "checkins.ok": "Check-ins that succeeded",
    "sales": "Sales",
    "taps": "Taps (NFC)",
    "scans": "Scans (QR)",
    "taps.staff_test": "Staff reader tests: taps",
    "scans.staff_test": "Staff reader tests: scans",
    "conversion.view_to_handoff": "Views handed off to a phone",
    "conversion.visit_to_purchase": "Visits that bought",
    "dwell_s.average": "Time in store per visit",
    "footfall.peak_per_min": "Busiest minute (phones nearby)",
    "survey.answers": "Survey answers",
    "survey.average": "Survey average score",
    "survey.s5.answers": "Answers on the 1-5 stars",
    "survey.s5.average": "Average on the 1-5 stars",
    "survey.s10.answers": "Answers on the 0-10 scale",
    "survey.s10.average": "Average on the 0-10 scale",
    "survey.s10.promoters": "Promoters (9-10)",
    "survey.s10.detractors": "Detractors (0-6)",
    "nps": "Net Promoter Score (NPS)",
    "alerts": "Staff alerts raised",
    "alerts.escalated": "Staff alerts escalated",
    "alerts.acknowledged": "Staff alerts acknowledged",
    "alerts.closed": "Staff alerts closed",
    "alerts.closed_after_ack": "Closed after an acknowledgement",
    "alerts.ack_s.average": "Time to acknowledge",
    "alerts.close_s.average": "Time from acknowledgement to done",
    "refunds": "Refunds",
    "sales.visit": "Sales during an app visit",
    "offers.redeemed": "Offers redeemed",
    "offers.refused": "Offer codes refused",
    "offers.personal": "Personal offers shown at the kiosk",
    "visits.repeat": "Repeat visits (the app seen before, within the retention days)",
    "conversion.visit_repeat": "Visits that were repeat visits",
    "checkins.pickup": "Pickups checked in",
    "pickup_addon": "Add-on sales at a pickup",
    "conversion.pickup_to_addon": "Pickups that bought more",
}
# metrics named after a value: a scan's class, a currency, a campaign
PATTERNS: Final = [
    (re.compile(r"scans\.(.+)"), "Scans: {}"),
    (re.compile(r"(sales|refunds)\.([A-Z]{3}|other)"), "{} in {}"),
    (re.compile(r"(sales|refunds)\.([A-Z]{3}|other)\.minor"), "{} total ({})"),
    (re.compile(r"aov\.([A-Z]{3}|other)\.minor"), "Average order ({})"),
    (re.compile(r"pickup_addon\.([A-Z]{3}|other)\.minor"), "Add-on sales at a pickup ({})"),
    (re.compile(r"offers\.redeemed\.(.+)"), "Offers redeemed: {}"),
    (re.compile(r"survey\.s(\d+)\.sum"), "Sum of scores on the {}-point scale"),
    (re.compile(r"ab\.(.+)/(.+)\.views"), "Variant {1} of {0}: views"),
    (re.compile(r"ab\.(.+)/(.+)\.handoffs"), "Variant {1} of {0}: hand-offs"),
    (re.compile(r"ab\.(.+)/(.+)\.conversion"), "Variant {1} of {0}: views handed off"),
    (
        re.compile(r"ab\.(.+)/(.+)\.conversion_ci95"),
        "Variant {1} of {0}: views handed off, 95 % interval",
    ),
    (re.compile(r"ab\.(.+)/(.+)\.sessions"), "Variant {1} of {0}: shoppers shown it"),
    (re.compile(r"ab\.(.+)/(.+)\.sessions_handed_off"),
     "Variant {1} of {0}: shoppers who took it to their phone"),
    (re.compile(r"ab\.(.+)/(.+)\.session_conversion"),
     "Variant {1} of {0}: shoppers who took it"),
    (re.compile(r"ab\.(.+)/(.+)\.session_conversion_ci95"),
     "Variant {1} of {0}: shoppers who took it, 95 % interval"),
]
# the shoppers' path through the store, in order; sales only where the tills report
FUNNEL: Final = ("visits", "views", "handoffs", "checkins", "sales")
GROUPS: Final = [
    ("Shoppers", ("visits", "conversion.visit_repeat", "dwell_s.average",
                  "footfall.peak_per_min")),
    (
        "Kiosk",
        (
            "views",
            "handoffs",
            "conversion.view_to_handoff",
            "checkins",
            "checkins.ok",
            "taps",
            "scans",
            "scans.",
            "taps.staff_test",
        ),
    ),
    ("Survey", ("survey.answers", "survey.average", "nps", "survey.s10.", "survey.")),
    ("Staff alerts", ("alerts",)),
    ("Sales and offers", ("sales", "refunds", "aov.", "conversion.visit_to_purchase",
                          "pickup_addon", "conversion.pickup_to_addon", "offers.")),
]
# ISO 4217 currencies whose minor unit is not the hundredth (others: cents)
_EXPONENT: Final = {
    **dict.fromkeys(
        (
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def label(metric: str) -> str:
    """The metric's name in words; an unknown one as it is (still readable, never cut)."""
    if metric in LABELS:
        return LABELS[metric]
    for pattern, text in PATTERNS:
        m = pattern.fullmatch(metric)
        if m:
            words = [g.capitalize() if g in ("sales", "refunds") else g for g in m.groups()]
            return text.format(*words)
    return metric


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def money(minor: float, currency: str) -> str:
    digits = _EXPONENT.get(currency, 2)
    return f"{minor / 10**digits:,.{digits}f} {currency}"


def shown(metric: str, value: Any) -> str:
    """The value as the report prints it: a count whole, a share in percent, a time in
    minutes and seconds, money in its currency, an average with one decimal."""
    if isinstance(value, list) and len(value) == 2:  # an interval
        return f"{value[0] * 100:.0f}-{value[1] * 100:.0f} %"
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    if metric.startswith("conversion.") or metric.endswith((".conversion", "_conversion")):
        return f"{value * 100:.0f} %"
    if metric.endswith("_s.average"):
        return _duration(value)
    if metric.endswith(".minor"):
        return money(value, metric.split(".")[1])
    if metric == "nps":
        return f"{value:+d}" if value else "0"
    if metric.endswith(".average"):
        return f"{value:.1f}"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def grouped(summary: dict[str, Any], skip: Iterable[str] = ()) -> list[tuple[str, list[str]]]:
    """The summary's metrics in the report's groups, in the groups' order; the rest last
    (`skip`: metrics shown elsewhere)."""
    left = [k for k in summary if k not in set(skip)]
    out: list[tuple[str, list[str]]] = []
    for title, keys in GROUPS:
        chosen = [
            k
            for want in keys
            for k in left
            if k == want
            or (want.endswith(".") and k.startswith(want))
            or (not want.endswith(".") and k.startswith(want + "."))
        ]
        chosen = list(dict.fromkeys(chosen))
        left = [k for k in left if k not in chosen]
        if chosen:
            out.append((title, chosen))
    if left:
        out.append(("Other", left))
    return out


def funnel(summary: dict[str, Any]) -> list[tuple[str, int, str]]:
    """Visits -> views -> hand-offs -> check-ins (-> sales where the tills report): each
    step's name, count, and its conversion where the step has one."""
    steps = [m for m in FUNNEL if m != "sales" or "sales" in summary]
    notes = {
        "handoffs": ("conversion.view_to_handoff", "of views"),
        "sales": ("conversion.visit_to_purchase", "of visits bought"),
    }
    out = []
    for m in steps:
        key, words = notes.get(m, ("", ""))
        note = f"{shown(key, summary[key])} {words}" if key in summary else ""
        out.append((label(m), int(summary.get(m, 0)), note))
    return out


def variants(summary: dict[str, Any]) -> list[tuple[str, str, int, int, str, str]]:
    """The A/B tests' rows: page, variant, views, hand-offs, conversion and its 95 % interval."""
    out = []
    for key, value in summary.items():
        if key.startswith("ab.") and key.endswith(".conversion"):
            test = key.removesuffix(".conversion")
            page, _, variant = test.removeprefix("ab.").rpartition("/")
            out.append(
                (
                    page,
                    variant,
                    int(summary.get(f"{test}.views", 0)),
                    int(summary.get(f"{test}.handoffs", 0)),
                    shown(key, value),
                    shown(key, summary.get(f"{test}.conversion_ci95")),
                )
            )
    return sorted(out)


def shoppers(summary: dict[str, Any]) -> list[tuple[str, str, int, int, str, str]]:
    """The A/B tests' rows per shopper session: page, variant, shoppers shown it, shoppers
    who took it to their phone, their share and its 95 % interval."""
    out = []
    for key, value in summary.items():
        if key.startswith("ab.") and key.endswith(".session_conversion"):
            test = key.removesuffix(".session_conversion")
            page, _, variant = test.removeprefix("ab.").rpartition("/")
            out.append((page, variant, int(summary.get(f"{test}.sessions", 0)),
                        int(summary.get(f"{test}.sessions_handed_off", 0)),
                        shown(key, value),
                        shown(key, summary.get(f"{test}.session_conversion_ci95"))))
    return sorted(out)


def table(rows: Iterable[tuple[str, str]], indent: str = "  ") -> list[str]:
    """Name and value lines, the names in a column as wide as the longest (none cut)."""
    rows = list(rows)
    width = max((len(name) for name, _ in rows), default=0)
    return [f"{indent}{name:<{width}}  {value}" for name, value in rows]
