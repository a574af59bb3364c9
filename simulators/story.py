"""The demo's story: what the agent commits, told in the words of the store ("an app shopper
arrives", "Anna's order is ready at the counter") with the scenario's names for its people,
tags and beacons; each answer the kiosk gives judged against what the scenario expects; and
the closing summary — what happened, what the faults did, what arrived upstream and why the
count of events differs a little from run to run."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.contracts import events as ev
from agent.contracts.alerts import AlertKind
from simulators.scenario.expected import CONFIRMED, Expected
from simulators.scenario.model import FAULT_WORDS, Scenario

# what the agent says about a code it refused, by its reason
_REJECTED = {
    "scheme-not-allowed": "its link is not a web page",
    "domain-not-allowed": "its link leads outside the store's sites",
    "too-long": "it is too long",
    "control-characters": "it holds control characters",
}
_BATTERY = {
    "low-battery": "reports a low battery",
    "silent": "has gone silent",
    "heard-again": "is heard again",
}


@dataclass
class KioskAnswer:
    clock: str
    words: str
    as_expected: bool


@dataclass
class Tally:
    """What the live view saw, for the summary (also after Ctrl-C)."""

    counts: Counter[str] = field(default_factory=Counter)
    committed: int = 0
    answers: list[KioskAnswer] = field(default_factory=list)
    waiting_max: int = 0  # the most events that waited in the outbox at once
    outages: list[list[str]] = field(default_factory=list)  # [from, to] store clock, uplink
    upstream: int = 0


class Story:
    """Words for the agent's events, and the verdict on each kiosk answer. Thread-safe: the
    live view's threads call it."""

    def __init__(self, sc: Scenario, ex: Expected) -> None:
        self.sc = sc
        self.ex = ex
        self.tally = Tally()
        self._loyalty = list(ex.loyalty)  # outcomes still to come, in time order
        self._lock = threading.Lock()
        self._tags = {t.name: t for t in sc.tags.values()}
        self._beacons = {f"eddystone-uid:{b.namespace}:{b.instance}": b.name for b in sc.beacons}

    def _name(self, order: str) -> str:
        o = self.sc.orders.get(order)
        return f"{o.first_name}'s" if o else "a shopper's"

    def tell(self, event: Mapping[str, Any], clock: str) -> str | None:
        """One line for an event worth telling; None for the rest."""
        with self._lock:
            self.tally.committed = max(self.tally.committed, int(event.get("seq") or 0))
            return self._tell(str(event.get("type", "")), event.get("data") or {}, clock)

    def _count(self, what: str) -> None:
        self.tally.counts[what] += 1

    def _tell(self, t: str, d: Mapping[str, Any], clock: str) -> str | None:
        if t == ev.NFC_TAP:
            self._count("taps")
            tag = d.get("tag", {})
            known = self._tags.get(str(tag.get("label", "")))
            if tag.get("kind") == "unregistered" or known is None:
                return "the reader reads a card the store does not know (kept anonymous)"
            return f"the reader reads {known.words}"
        if t == ev.QR_SCAN:
            self._count("codes")
            cls = d.get("class")
            if cls == "rejected":
                why = _REJECTED.get(str(d.get("reason")), "the store does not accept it")
                return f"the camera reads a code and the agent refuses it: {why}"
            if cls == "pickup":
                return f"the camera reads {self._name(str(d.get('order')))} pickup code"
            article = "an" if str(cls)[:1] in "aeiou" else "a"
            return f"the camera reads {article} {cls} code"
        if t == ev.KIOSK_CHECKIN:
            return self._checkin(d, clock)
        if t == ev.KIOSK_SURVEY:
            self._count("surveys")
            return f"a shopper rates the visit {d.get('score')} of {d.get('scale')}"
        if t == ev.BLE_PRESENCE and d.get("kind") == "app" and d.get("action") != "zone":
            if d.get("action") == "enter":
                self._count("app shoppers")
                return "an app shopper arrives in the store"
            # the agent's clock runs at wall speed: its dwell in store minutes
            stayed = float(d.get("dwell_s") or 0) * self.sc.speed / 60
            return f"an app shopper leaves after about {stayed:.0f} min in the store"
        if t == ev.BLE_BEACON_HEALTH and d.get("status") in _BATTERY:
            self._count("beacon warnings")
            name = self._beacons.get(str(d.get("beacon")), "a")
            mv = f" ({d['battery_mv']} mV)" if d.get("battery_mv") else ""
            return f"the {name} beacon {_BATTERY[str(d.get('status'))]}{mv}"
        if t == ev.AGENT_OUTBOX_RESERVE:
            return (
                "the disk is full: the agent uses its reserve"
                if d.get("status") == "released"
                else "the disk has room again: the agent takes its reserve back"
            )
        return self._staff(t, d)

    def _staff(self, t: str, d: Mapping[str, Any]) -> str | None:
        if not t.startswith(ev.STAFF_PREFIX):
            return None
        if d.get("kind") != AlertKind.CALL_STAFF:
            return self._alert(t, d)
        if t == ev.STAFF_ALERT:
            self._count("calls for staff")
            return "the agent raises a staff alert: a shopper needs help at the kiosk"
        if t == ev.STAFF_ALERT_ACKNOWLEDGED:
            return f"{d.get('by')} takes the call on the staff view"
        if t == ev.STAFF_ALERT_ESCALATED:
            return "nobody has taken the call: the alert escalates"
        return None

    def _alert(self, t: str, d: Mapping[str, Any]) -> str | None:
        """The staff alerts other than calls: what each is about, who takes it, how it ends
        (the events name no shopper: the scenario's names stand in for the staff view's)."""
        ref = d.get("ref") if isinstance(d.get("ref"), dict) else {}
        about = self._about(str(d.get("kind")), ref or {})
        if t == ev.STAFF_ALERT:
            return f"the agent alerts staff: {about}"
        if t == ev.STAFF_ALERT_ACKNOWLEDGED:
            return f"{d.get('by')} takes the alert on the staff view ({about})"
        if t == ev.STAFF_ALERT_ESCALATED and d.get("level") == 1:  # louder again: not told
            return f"nobody has taken the alert yet: it escalates ({about})"
        if t == ev.STAFF_ALERT_CLOSED:
            by = str(d.get("by"))
            how = {"handover": "the order is handed over", "agent": "its cause is gone"}.get(
                by, f"{by} marks it done")
            return f"{how}: the alert closes ({about})"
        return None

    def _about(self, kind: str, ref: Mapping[str, Any]) -> str:
        if kind in (AlertKind.PICKUP, AlertKind.ORDER_READY):
            o = self.sc.orders.get(str(ref.get("order")))
            who = o.first_name if o else "a shopper"
            return f"{who} is here to pick up an order" if kind == AlertKind.PICKUP else \
                f"{who}'s order is ready while they wait"
        if kind == AlertKind.APPOINTMENT:
            appt = next((a for a in self.sc.appointments if a.id == ref.get("appointment")), None)
            who = appt.first_name if appt and appt.first_name else "a shopper"
            what = f"{appt.service} appointment" if appt and appt.service else "appointment"
            return f"{who} has arrived for their {what}"
        if kind in (AlertKind.BEACON_BATTERY, AlertKind.BEACON_SILENT):
            name = self._beacons.get(str(ref.get("beacon")))
            return (f"the {name} beacon" if name else "a beacon") + (
                " needs a battery" if kind == AlertKind.BEACON_BATTERY else " is not heard")
        if kind == AlertKind.DEVICE_DOWN:
            return f"the {ref.get('component') or 'device'} is down"
        if kind == AlertKind.OUTBOX_FILLING:
            return "the event buffer is filling up"
        return f"a {kind} alert"

    def _checkin(self, d: Mapping[str, Any], clock: str) -> str:
        kind, outcome = d.get("kind"), str(d.get("outcome"))
        if kind == "loyalty":
            self._count("loyalty check-ins")
            want = self._loyalty.pop(0) if self._loyalty else None
            words = (
                "the kiosk recognises a loyalty card and greets its holder"
                if outcome == "loyalty.ok"
                else "the kiosk does not find the loyalty card"
                if outcome == "not-found"
                else f"the loyalty card's check-in ends: {outcome}"
            )
            return self._judge(clock, words, outcome == want, want)
        if kind == "appointment":
            self._count("appointments")
            appt = next((a for a in self.sc.appointments if a.id == d.get("appointment")), None)
            who = appt.first_name if appt and appt.first_name else "a shopper"
            words = f"{who} is checked in for their appointment" if outcome == "appointment.ok" \
                else f"{who}'s appointment check-in ends: {outcome}"
            return self._judge(clock, words, appt is not None and outcome == "appointment.ok",
                               "checked in")
        self._count("pickups")
        whose = self._name(str(d.get("order", "")))
        words = {
            "pickup.ready": f"{whose} order is ready at the counter",
            "pickup.ok": f"{whose} order is on its way to the counter",
            "not-found": f"{whose} order is not found",
            "already": f"{whose} order was already checked in",
        }.get(outcome, f"{whose} check-in ends: {outcome}")
        how = " (the code read by the camera)" if d.get("via") == "qr" else ""
        expected = str(d.get("order", "")) in self.ex.checkins
        return self._judge(
            clock,
            words + how,
            expected == (outcome in CONFIRMED),
            "confirmed" if expected else "refused",
        )

    def _judge(self, clock: str, words: str, ok: bool, want: str | None) -> str:
        self.tally.answers.append(KioskAnswer(clock, words, ok))
        if ok:
            return f"{words} — as the scenario expects"
        return f"{words} — NOT as the scenario expects ({want or 'no such check-in'})"


def clock_of(sc: Scenario, t: float) -> str:
    """Store time `t` (seconds after opening) on the store's clock, "HH:MM"."""
    h = sc.opens_h * 3600 + max(0.0, t)
    return f"{int(h // 3600):02d}:{int(h % 3600 // 60):02d}"


def summary(
    sc: Scenario,
    ex: Expected,
    tally: Tally,
    *,
    finished: bool,
    wall_s: float,
    problems: list[str] | None,
    upstream: int | None,
    broker: str,
    reached: float | None = None,
) -> list[str]:
    """The closing lines: what happened, the kiosk's answers, what the faults did, what
    arrived upstream and why the count of events differs between runs. `reached`: the store
    time a stopped run got to (the faults after it never happened)."""
    span = f"{clock_of(sc, 0)}-{clock_of(sc, sc.length_s)}"
    head = (
        f"The day in short ({span} store time, {wall_s:.0f} s):"
        if finished
        else f"Stopped after {wall_s:.0f} s — the day so far:"
    )
    lines = [head]
    c = tally.counts
    seen = ", ".join(_plural(n, what) for what, n in c.items() if n) or "nothing yet"
    lines.append(f"  what happened: {seen}; {tally.committed} events committed by the agent")
    if tally.answers:
        good = sum(a.as_expected for a in tally.answers)
        lines.append(
            f"  the kiosk: {good} of {len(tally.answers)} answers as the scenario "
            "expects"
            + (
                ""
                if good == len(tally.answers)
                else " — "
                + "; ".join(f"{a.clock} {a.words}" for a in tally.answers if not a.as_expected)
            )
        )
    for f in sc.faults:
        if reached is not None and f.at > reached:
            continue
        begins, _ = FAULT_WORDS[f.kind]
        when = clock_of(sc, f.at) + (f"-{clock_of(sc, f.end)}" if f.minutes else "")
        lines.append(f"  fault {when}: {begins} — {_fault_effect(f.kind, ex, tally)}")
    if upstream is None:
        lines.append("  upstream: not checked (stopped before the end)")
    elif broker == "none":
        lines.append(
            f"  upstream: no broker; the {upstream} events wait in the outbox, each "
            "once, for a broker to come"
        )
    else:
        lines.append(
            f"  upstream: {upstream} events arrived, each once, no gap in their "
            "numbering, no Bluetooth address"
        )
    if problems:
        lines += [f"  PROBLEM: {p}" for p in problems]
    elif finished:
        lines.append("  all as expected: every tap, code, check-in, survey and call")
    lines.append(
        "  why the count of events differs between runs: the beacons and phones are "
        "radio with noise and lost packets, so how often a shopper changes zone and "
        "how many beacon readings land in the morning vary a little; the taps, codes, "
        "check-ins and calls are the same every run"
    )
    return lines


def _plural(n: int, what: str) -> str:
    """ "1 tap", "2 taps", "1 call for staff", "1 loyalty check-in"."""
    if n == 1:
        first, _, rest = what.partition(" ")
        if first.endswith("s") and rest:
            what = f"{first[:-1]} {rest}"
        elif what.endswith("s"):
            what = what[:-1]
    return f"{n} {what}"


def _fault_effect(kind: str, ex: Expected, tally: Tally) -> str:
    if kind in ("network-cut", "broker-down"):
        held = (
            f"up to {tally.waiting_max} events waited in the outbox"
            if tally.waiting_max
            else "events waited in the outbox"
        )
        return f"{held} and went upstream once the link was back, none lost"
    if kind == "nfc-unplugged":
        return (
            f"{_plural(ex.lost_taps, 'taps')} meanwhile never read, as in a store; the "
            "agent reopened the reader by itself"
        )
    if kind == "camera-gone":
        return (
            f"{_plural(ex.unseen_codes, 'codes')} nobody could read (a pickup code is "
            "typed instead); the agent reopened the camera by itself"
        )
    if kind == "disk-full":
        return "the agent used its disk reserve and kept every event"
    if kind == "clock-jump":
        return "event times jump, their order (seq) does not"
    return "the scanner came back by itself"
