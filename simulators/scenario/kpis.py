"""The KPIs a scenario's day must show in `o2o-edge report --json`, worked out from the
scenario file alone (through its expectation, simulators/scenario/expected.py): the shoppers'
taps and scans, the kiosk's check-ins and how many went well, the survey, and the till's
sales and offer codes.

Only what the scenario fixes is here. Content views and hand-offs depend on the kiosk's
bundle, staff alerts on how fast staff answer on a loaded machine, and a visit counts at the
app's exit, heard out after the day's last signal, when the runner may have stopped the
agent (and a sale while an app is still heard is that visit's, whatever the file says): they
are not.
"""

from __future__ import annotations

from collections import Counter

from simulators.scenario.expected import Expected, expected
from simulators.scenario.model import Scenario

SURVEY_SCALE = 5  # the kiosk's built-in content asks its survey on 1-5 stars


def expected_kpis(sc: Scenario, ex: Expected | None = None) -> dict[str, float]:
    """The report's summary keys and values for the scenario's day (`ex`: its expectation
    as the runner adjusted it to the machine, e.g. no radio)."""
    ex = expected(sc) if ex is None else ex
    out: Counter[str] = Counter()
    out["taps"] = sum(ex.taps.values())
    out["scans"] = sum(ex.scans.values())
    for cls, n in ex.scans.items():
        out[f"scans.{cls}"] = n
    # every check-in the kiosk asks for: pickups (known orders are confirmed), loyalty cards
    # and codes, appointments (booked after the arrival: never too early)
    out["checkins"] = len(ex.checkins) + len(ex.loyalty) + ex.arrivals
    ok = sum(1 for order in ex.checkins if order in sc.orders) + ex.arrivals
    out["checkins.ok"] = ok + ex.loyalty.count("loyalty.ok")
    out["checkins.pickup"] = sum(1 for order in ex.checkins if order in sc.orders)
    answers = sum(ex.surveys.values())
    if answers:
        total = sum(score * n for score, n in ex.surveys.items())
        out["survey.answers"] = out[f"survey.s{SURVEY_SCALE}.answers"] = answers
        average = round(total / answers, 2)
        kpis: dict[str, float] = {"survey.average": average,
                                  f"survey.s{SURVEY_SCALE}.average": average}
    else:
        kpis = {}
    for receipt in ex.sales:
        sale = next(s for s in sc.sales if s.receipt == receipt)
        out["sales"] += 1
        out[f"sales.{sale.currency}"] += 1
        out[f"sales.{sale.currency}.minor"] += sale.total
    out["offers.redeemed"] = len(ex.redeemed)
    for receipt in ex.redeemed:
        campaign = ex.sales.get(receipt)
        if campaign:
            out[f"offers.redeemed.{campaign}"] += 1
    out["offers.refused"] = sum(ex.offers_refused.values())
    kpis.update({k: v for k, v in out.items() if v})
    return kpis


# the summary keys expected_kpis speaks for: a report key of these families that it does not
# name is one the day should not have
FIXED = ("taps", "scans", "checkins", "survey", "sales", "offers")
NOT_FIXED = frozenset({"sales.visit"})  # an app's presence outlasts its shopper by an exit time


def fixed_part(summary: dict[str, object]) -> dict[str, object]:
    """The keys of a report's summary the scenario fixes (see FIXED)."""
    return {k: v for k, v in summary.items()
            if k.split(".")[0] in FIXED and k not in NOT_FIXED}

