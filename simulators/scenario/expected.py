"""What a scenario must leave upstream, worked out from the scenario alone, and the check of
what a collector received against it.

What a fault takes away is part of the expectation: a tap on a reader that is unplugged is
never read, a code shown to a camera that is gone is never seen (the shopper then types the
pickup code instead). Nothing else may be missing, and nothing may arrive twice.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from agent.contracts import events as ev
from agent.contracts.alerts import AlertKind
from simulators.scenario.model import Consent, Scenario

LOW_BATTERY_MV = 2500
CONFIRMED = ("pickup.ok", "pickup.ready")  # on its way / waiting at the counter
_MAC = re.compile(r"(?i)\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b")


@dataclass
class Expected:
    taps: Counter[str] = field(default_factory=Counter)  # "shelf:label", "unregistered"
    scans: Counter[str] = field(default_factory=Counter)  # by class
    checkins: dict[str, str] = field(default_factory=dict)  # order -> via
    surveys: Counter[int] = field(default_factory=Counter)
    app_users: set[str] = field(default_factory=set)  # presence ids that must enter
    withheld: set[str] = field(default_factory=set)  # app users who withdrew consent
    low_battery: set[str] = field(default_factory=set)  # beacon keys
    lost_taps: int = 0  # taps on an unplugged reader
    unseen_codes: int = 0  # codes shown to a camera that was gone
    calls: int = 0  # shoppers' calls for staff: each raises one call-staff alert
    acks: Counter[str] = field(default_factory=Counter)  # call alerts acknowledged, by whom
    escalated: int = 0  # call alerts nobody acknowledged in time: each escalates
    # appointments whose shoppers check in at the kiosk: each raises one "appointment" alert,
    # acknowledged by whom the scenario names (or escalating), as for calls
    arrivals: int = 0
    arrival_acks: Counter[str] = field(default_factory=Counter)
    arrivals_escalated: int = 0
    # loyalty check-ins the kiosk makes (a card tapped, a loyalty code shown), in time order:
    # "loyalty.ok" for a card with a holder, "not-found" for one nobody registered
    loyalty: list[str] = field(default_factory=list)
    # the till: each receipt once, with the campaign of the offer it redeemed (None: none),
    # the app user (presence id) whose visit it is, and the offers redeemed (by receipt) and
    # refused (by reason: a code used before is refused however often the till tries)
    sales: dict[str, str | None] = field(default_factory=dict)
    sale_visits: dict[str, str] = field(default_factory=dict)
    redeemed: list[str] = field(default_factory=list)
    offers_refused: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        return {"taps": dict(self.taps), "scans": dict(self.scans), "checkins": self.checkins,
                "surveys": {str(k): v for k, v in self.surveys.items()},
                "app_users": sorted(self.app_users), "withheld": sorted(self.withheld),
                "low_battery": sorted(self.low_battery),
                "lost_taps": self.lost_taps, "unseen_codes": self.unseen_codes,
                "calls": self.calls, "acks": dict(self.acks), "escalated": self.escalated,
                "arrivals": self.arrivals, "arrival_acks": dict(self.arrival_acks),
                "arrivals_escalated": self.arrivals_escalated,
                "loyalty": self.loyalty, "sales": self.sales,
                "sale_visits": self.sale_visits, "redeemed": self.redeemed,
                "offers_refused": dict(self.offers_refused)}


def checkin_via(sc: Scenario, at: float, via: str) -> str:
    """How a check-in really happens: a code meant for a camera that is gone gets typed."""
    return "code" if via == "qr" and sc.during("camera-gone", at) else via


def expected_as_applied(sc: Scenario, applied: list[Consent], unsure: set[int]) -> Expected:
    """What the store should report, its consent documents taken as the agent applied them:
    `applied` carry the store time each one was applied (later than sent while the link was
    down: the agent can only keep to a document it has); the app users in `unsure` had one
    that was not applied in time, so whether they are reported is not judged."""
    ex = expected(replace(sc, consents=applied))
    for app in unsure:
        key = f"app:{sc.app_uuid}:1:{app}"
        ex.app_users.discard(key)
        ex.withheld.discard(key)
    return ex


def expected(sc: Scenario) -> Expected:
    ex = Expected()
    for tap in sc.taps:
        if sc.during("nfc-unplugged", tap.at):
            ex.lost_taps += 1
            continue
        tag = sc.tags[tap.tag]
        ex.taps["unregistered" if tag.role == "unknown" else f"{tag.role}:{tag.name}"] += 1
    loyalty: list[tuple[float, str]] = [
        (tap.at, "loyalty.ok" if sc.tags[tap.tag].holder else "not-found") for tap in sc.taps
        if sc.tags[tap.tag].role == "loyalty" and not sc.during("nfc-unplugged", tap.at)]
    for scan in sc.scans:
        if sc.during("camera-gone", scan.at):
            ex.unseen_codes += 1
        else:
            ex.scans[scan.expect] += 1
            if scan.expect == "loyalty":  # a code on a phone: no scenario registers codes
                loyalty.append((scan.at, "not-found"))
    ex.loyalty = [outcome for _, outcome in sorted(loyalty)]
    for ck in sc.checkins:
        via = checkin_via(sc, ck.at, ck.via)
        if ck.via == "qr" and via == "code":
            ex.unseen_codes += 1
        if via == "qr":
            ex.scans["pickup"] += 1
        ex.checkins[ck.order] = via
        if ck.score:
            ex.surveys[ck.score] += 1
    for s in (s for s in sc.shoppers if s.app):
        key = f"app:{sc.app_uuid}:1:{s.app}"
        states = {sc.consent_at(s.app, t) for t in (s.at, s.at + s.minutes * 60)}
        if states == {"withdrawn"}:  # withdrawn before the visit and all through it
            ex.withheld.add(key)
        elif states == {"granted"}:
            ex.app_users.add(key)
    ex.calls = len(sc.calls)
    ex.acks = Counter(c.staff for c in sc.calls if c.staff)
    ex.escalated = sum(c.escalates(sc.speed) for c in sc.calls)
    ex.arrivals = len(sc.appointments)
    ex.arrival_acks = Counter(a.staff for a in sc.appointments if a.staff)
    ex.arrivals_escalated = sum(a.escalates(sc.speed) for a in sc.appointments)
    ex.low_battery = {f"eddystone-uid:{b.namespace}:{b.instance}" for b in sc.beacons
                      if min(b.battery_mv) < LOW_BATTERY_MV}
    _till(sc, ex)
    return ex


def _till(sc: Scenario, ex: Expected) -> None:
    used: set[str] = set()
    for sale in sc.sales:
        campaign = None
        for offer in sale.offers:
            if offer in used:
                ex.offers_refused["offer-used"] += 1
                continue
            used.add(offer)
            ex.redeemed.append(sale.receipt)
            campaign = campaign or sc.offers[offer].campaign
        ex.sales[sale.receipt] = campaign
        if sale.app:
            ex.sale_visits[sale.receipt] = f"app:{sc.app_uuid}:1:{sale.app}"


@dataclass
class Received:
    """What the collector holds, reduced to what the expectation speaks of."""

    events: list[dict[str, Any]]
    report: list[dict[str, Any]]

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [e["data"] for e in self.events if e["type"] == event_type]


def _tap_key(data: dict[str, Any]) -> str:
    tag = data.get("tag", {})
    kind = tag.get("kind", "?")
    return "unregistered" if kind == "unregistered" else f"{kind}:{tag.get('label', '')}"


def check(sc: Scenario, ex: Expected, got: Received, addresses: set[str],
          final_seq: dict[str, int]) -> list[str]:
    """Every way `got` differs from what the scenario must leave; [] when it is all there.
    `addresses`: the Bluetooth addresses that were on air; `final_seq`: per boot id, the
    last seq the agent committed."""
    problems: list[str] = []
    taps = Counter(_tap_key(d) for d in got.of(ev.NFC_TAP))
    if taps != ex.taps:
        problems.append(f"taps: expected {dict(ex.taps)}, got {dict(taps)}")
    scans = Counter(d.get("class", "?") for d in got.of(ev.QR_SCAN))
    if scans != ex.scans:
        problems.append(f"scans: expected {dict(ex.scans)}, got {dict(scans)}")
    pickups = [d for d in got.of(ev.KIOSK_CHECKIN) if d.get("kind") == "pickup"]
    checkins = {d.get("order", ""): d.get("via", "") for d in pickups
                if d.get("outcome") in CONFIRMED}
    if checkins != ex.checkins:
        problems.append(f"check-ins confirmed: expected {ex.checkins}, got {checkins}")
    failed = [d for d in pickups if d.get("outcome") not in CONFIRMED]
    if failed:
        problems.append(f"check-ins not confirmed: {failed}")
    loyalty = Counter(str(d.get("outcome")) for d in got.of(ev.KIOSK_CHECKIN)
                      if d.get("kind") == "loyalty")
    if loyalty != Counter(ex.loyalty):
        problems.append(f"loyalty check-ins: expected {dict(Counter(ex.loyalty))}, "
                        f"got {dict(loyalty)}")
    surveys = Counter(int(d.get("score", 0)) for d in got.of(ev.KIOSK_SURVEY))
    if surveys != ex.surveys:
        problems.append(f"surveys: expected {dict(ex.surveys)}, got {dict(surveys)}")
    entered = {d["id"] for d in got.of(ev.BLE_PRESENCE) if d.get("action") == "enter"}
    if ex.app_users - entered:
        problems.append(f"app users never seen arriving: {sorted(ex.app_users - entered)}")
    reported = {d.get("id") for d in got.of(ev.BLE_PRESENCE)}
    if ex.withheld & reported:
        problems.append(f"reported although consent was withdrawn: "
                        f"{sorted(ex.withheld & reported)}")
    low = {d["beacon"] for d in got.of(ev.BLE_BEACON_HEALTH)
           if d.get("status") == "low-battery"}
    if ex.low_battery - low:
        problems.append(f"low batteries not reported: {sorted(ex.low_battery - low)}")
    problems += check_staff(ex, got)
    problems += check_till(ex, got)
    problems += check_delivery(got, final_seq)
    text = json.dumps(got.events)
    leaked = sorted(a for a in addresses if a.lower() in text.lower())
    if leaked or _MAC.search(text):
        problems.append(f"Bluetooth addresses upstream: {leaked or _MAC.findall(text)[:5]}")
    return problems


def check_staff(ex: Expected, got: Received) -> list[str]:
    """The calls for staff and the appointments' arrivals upstream: each alert raised once,
    acknowledged by whom the scenario says, and the ones nobody answered in time escalated;
    each arrival checked in."""
    problems = []
    for kind, (what, short), (n, acked, late) in (
            (AlertKind.CALL_STAFF, ("calls for staff", "calls"),
             (ex.calls, ex.acks, ex.escalated)),
            (AlertKind.APPOINTMENT, ("appointment arrivals", "arrivals"),
             (ex.arrivals, ex.arrival_acks, ex.arrivals_escalated))):
        raised = [d for d in got.of(ev.STAFF_ALERT) if d.get("kind") == kind]
        if len(raised) != n:
            problems.append(f"{what}: expected {n} alerts, got {len(raised)}")
        acks = Counter(str(d.get("by", "")) for d in got.of(ev.STAFF_ALERT_ACKNOWLEDGED)
                       if d.get("kind") == kind)
        if acks != acked:
            problems.append(f"{short} acknowledged: expected {dict(acked)}, got {dict(acks)}")
        escalated = {d.get("alert") for d in got.of(ev.STAFF_ALERT_ESCALATED)
                     if d.get("kind") == kind}
        if len(escalated) != late:
            problems.append(f"{short} escalated: expected {late}, got {len(escalated)}")
    arrived = [d for d in got.of(ev.KIOSK_CHECKIN) if d.get("kind") == "appointment"]
    if Counter(str(d.get("outcome")) for d in arrived) != Counter({"appointment.ok": ex.arrivals}):
        problems.append(f"appointment check-ins: expected {ex.arrivals} appointment.ok, got "
                        f"{[d.get('outcome') for d in arrived]}")
    return problems


def check_till(ex: Expected, got: Received) -> list[str]:
    """The till's sales upstream: each receipt once (a resend counted once) with its offer's
    campaign and linked to its app user's visit; each offer redeemed once, a reuse refused."""
    problems = []
    sales = got.of(ev.POS_SALE)
    receipts = Counter(str(d.get("receipt")) for d in sales)
    if receipts != Counter(ex.sales.keys()):
        problems.append(f"sales: expected each of {sorted(ex.sales)} once, got {dict(receipts)}")
    visits: dict[str, set[str]] = {}
    for d in got.of(ev.BLE_PRESENCE):
        if d.get("visit"):
            visits.setdefault(str(d.get("id")), set()).add(str(d["visit"]))
    for d in sales:
        receipt = str(d.get("receipt"))
        if receipt in ex.sales and d.get("campaign") != ex.sales[receipt]:
            problems.append(f"sale {receipt}: campaign {d.get('campaign')!r}, expected "
                            f"{ex.sales[receipt]!r}")
        app = ex.sale_visits.get(receipt)
        if app and d.get("visit") not in visits.get(app, set()):
            problems.append(f"sale {receipt}: visit {d.get('visit')!r} is not {app}'s visit "
                            f"({sorted(visits.get(app, set()))})")
    redeemed = sorted(str(d.get("receipt")) for d in got.of(ev.OFFER_REDEEMED))
    if redeemed != sorted(ex.redeemed):
        problems.append(f"offers redeemed with receipts: expected {sorted(ex.redeemed)}, "
                        f"got {redeemed}")
    refused = Counter(str(d.get("reason")) for d in got.of(ev.OFFER_REFUSED))
    if refused != ex.offers_refused:
        problems.append(f"offers refused: expected {dict(ex.offers_refused)}, "
                        f"got {dict(refused)}")
    return problems


def check_delivery(got: Received, final_seq: dict[str, int]) -> list[str]:
    """Exactly once, no gap: per boot, seq 1..last, each once; and the agent's last commit
    of each boot is there."""
    problems = []
    for rep in got.report:
        if rep["gaps"]:
            problems.append(f"seq gaps in boot {rep['bootid']}: {rep['gaps']}")
        if rep["first_seq"] != 1 or rep["events"] != rep["last_seq"]:
            problems.append(f"boot {rep['bootid']}: {rep['events']} events for seq "
                            f"{rep['first_seq']}..{rep['last_seq']}")
    seen = {r["bootid"]: r["last_seq"] for r in got.report}
    for boot, last in final_seq.items():
        if seen.get(boot, 0) < last:
            problems.append(f"boot {boot}: the agent committed up to seq {last}, the collector "
                            f"has up to {seen.get(boot, 0)}")
    ids = Counter(e["id"] for e in got.events)
    twice = [i for i, n in ids.items() if n > 1]
    if twice:
        problems.append(f"events stored twice: {twice[:5]}")
    return problems
