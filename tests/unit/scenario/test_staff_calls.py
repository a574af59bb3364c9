"""Calls for staff in scenario files: what they say, every mistake named by its place, and
what a day with calls must leave upstream — each call's alert, the acks by whom the scenario
names, and an escalation for each call nobody answered in time."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from simulators.scenario.expected import Received, check_staff, expected
from simulators.scenario.model import ESCALATE_AFTER_S, Scenario, ScenarioError, load, parse
from simulators.story import Story

SCENARIOS = Path(__file__).resolve().parents[3] / "simulators" / "scenarios"
BASE = """
[store]
id = "s"
opens = "09:00"
closes = "12:00"
speed = 240
"""
CALLS = """
[[call]]
at = "10:00"
staff = "Anna"
answer_after_s = 40
[[call]]
at = "09:30"
[[call]]
at = "11:00"
staff = "Ben"
answer_after_s = 3000
"""


def scenario(extra: str) -> Scenario:
    return parse(tomllib.loads(BASE + extra))


def test_calls_are_read_in_time_order_with_who_answers_and_when() -> None:
    sc = scenario(CALLS)
    assert [(c.at, c.staff, c.answer_after_s) for c in sc.calls] == [
        (1800, "", 60.0), (3600, "Anna", 40.0), (7200, "Ben", 3000.0)]
    # 40 store seconds at 240x is a moment; nobody, or 3000 s (12.5 s real), escalates
    assert [c.escalates(sc.speed) for c in sc.calls] == [True, False, True]
    assert 3000 / 240 >= ESCALATE_AFTER_S > 40 / 240


def test_the_demo_shows_a_call_and_an_appointment_being_answered() -> None:
    sc = load(SCENARIOS / "demo_morning.toml")
    assert [c.staff for c in sc.calls] == ["Anna"]
    assert not sc.calls[0].escalates(sc.speed)
    [eva] = sc.appointments
    assert (eva.first_name, eva.staff) == ("Eva", "Ben") and not eva.escalates(sc.speed)
    assert sc.during("network-cut", eva.at)  # the store hears it without the internet


@pytest.mark.parametrize(("extra", "message"), [
    ('[[call]]\nat = "08:10"\n', "call[0].at: 08:10 is outside opening hours"),
    ('[[call]]\nat = "09:10"\nstaff = "\\u0007"\n', "call[0].staff: a staff name"),
    ('[[call]]\nat = "09:10"\nstaff = "Anna"\nanswer_after_s = -1\n',
     "call[0].answer_after_s: 0 to 3600"),
    ('[[call]]\nat = "09:10"\nstaff = 7\n', "call[0].staff: 7 should be a str"),
])
def test_call_mistakes_are_named_by_their_place(extra: str, message: str) -> None:
    with pytest.raises(ScenarioError) as err:
        scenario(extra)
    assert message in str(err.value)


def _ev(n: int, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"E{n}", "seq": n, "bootid": "B", "type": type_, "data": data}


def test_the_staff_check_counts_call_alerts_acks_and_escalations_upstream() -> None:
    ex = expected(scenario(CALLS))
    assert (ex.calls, dict(ex.acks), ex.escalated) == (3, {"Anna": 1, "Ben": 1}, 2)
    call = {"kind": "call-staff"}
    good = [_ev(1, "o2o.staff.alert", {**call, "alert": "a1"}),
            _ev(2, "o2o.staff.alert", {**call, "alert": "a2"}),
            _ev(3, "o2o.staff.alert", {**call, "alert": "a3"}),
            # a pickup's alert and its escalation are not calls: not counted
            _ev(4, "o2o.staff.alert", {"kind": "pickup", "alert": "p1"}),
            _ev(5, "o2o.staff.alert.escalated", {"kind": "pickup", "alert": "p1", "level": 1}),
            _ev(6, "o2o.staff.alert.acknowledged", {**call, "alert": "a2", "by": "Anna"}),
            # the one nobody answered escalates again and again: one call escalated
            _ev(7, "o2o.staff.alert.escalated", {**call, "alert": "a1", "level": 1}),
            _ev(8, "o2o.staff.alert.escalated", {**call, "alert": "a1", "level": 2}),
            _ev(9, "o2o.staff.alert.escalated", {**call, "alert": "a3", "level": 1}),
            _ev(10, "o2o.staff.alert.acknowledged", {**call, "alert": "a3", "by": "Ben"})]
    assert check_staff(ex, Received(good, [])) == []
    no_esc = [e for e in good if not (e["type"].endswith("escalated") and
                                      e["data"]["alert"] == "a1")]
    assert check_staff(ex, Received(no_esc, [])) == ["calls escalated: expected 2, got 1"]
    wrong = [e for e in good if e["id"] != "E6"]
    wrong.append(_ev(11, "o2o.staff.alert.acknowledged", {**call, "alert": "a2", "by": "Eve"}))
    assert check_staff(ex, Received(wrong, [])) == [
        "calls acknowledged: expected {'Anna': 1, 'Ben': 1}, got {'Ben': 1, 'Eve': 1}"]
    assert check_staff(ex, Received(good[1:], [])) == [
        "calls for staff: expected 3 alerts, got 2"]


def test_a_day_without_calls_expects_no_staff_events() -> None:
    ex = expected(load(SCENARIOS / "short_visit.toml"))
    assert (ex.calls, dict(ex.acks), ex.escalated) == (0, {}, 0)
    assert check_staff(ex, Received([], [])) == []


APPOINTMENTS = """
[[appointment]]
at = "10:30"
id = "P-7"
code = "ftg123"
first_name = "Eva"
service = "fitting"
staff = "Ben"
answer_after_s = 30
[[appointment]]
at = "09:45"
id = "P-8"
code = "REP456"
first_name = "Noor"
"""


def test_appointments_are_read_in_time_order_with_who_greets_them() -> None:
    sc = scenario(APPOINTMENTS)
    assert [(a.at, a.id, a.code, a.first_name, a.service, a.staff, a.answer_after_s)
            for a in sc.appointments] == [
        (2700, "P-8", "REP456", "Noor", "", "", 60.0),
        (5400, "P-7", "FTG123", "Eva", "fitting", "Ben", 30.0)]  # codes as the keypad types
    assert [a.escalates(sc.speed) for a in sc.appointments] == [True, False]


@pytest.mark.parametrize(("extra", "message"), [
    ('[[appointment]]\nat = "09:10"\ncode = "ABCD"\n', "appointment[0].id: missing"),
    ('[[appointment]]\nat = "09:10"\nid = "P 1"\ncode = "ABCD"\n', "appointment[0].id: 1-64"),
    ('[[appointment]]\nat = "09:10"\nid = "P-1"\ncode = "AB"\n', "appointment[0].code: 4 to 10"),
    ('[[appointment]]\nat = "09:10"\nid = "P-1"\ncode = "A-BC-D"\n',
     "appointment[0].code: 4 to 10"),
    ('[[appointment]]\nat = "09:10"\nid = "P-1"\ncode = "FIT123"\n',
     "appointment[0].code: 4 to 10 letters and digits the kiosk's keypad has (no I or O)"),
    ('[[appointment]]\nat = "09:10"\nid = "P-1"\ncode = ["ABCD"]\n',
     "appointment[0].code: ['ABCD'] should be a str"),
    ('[[appointment]]\nat = "09:10"\nid = "P-1"\ncode = "ABCD"\n'
     '[[appointment]]\nat = "09:20"\nid = "P-2"\ncode = "abcd"\n',
     "appointment[1]: id 'P-2' or code 'ABCD' is taken"),
    ('[[appointment]]\nat = "09:10"\nid = "P-1"\ncode = "ABCD"\nstaff = "\\u202e"\n',
     "appointment[0].staff: a staff name"),
    ('[[appointment]]\nat = "13:10"\nid = "P-1"\ncode = "ABCD"\n',
     "appointment[0].at: 13:10 is outside opening hours"),
])
def test_appointment_mistakes_are_named_by_their_place(extra: str, message: str) -> None:
    with pytest.raises(ScenarioError) as err:
        scenario(extra)
    assert message in str(err.value)


def test_the_staff_check_counts_appointment_arrivals_their_acks_and_check_ins() -> None:
    ex = expected(scenario(APPOINTMENTS))
    assert (ex.arrivals, dict(ex.arrival_acks), ex.arrivals_escalated) == (2, {"Ben": 1}, 1)
    appt = {"kind": "appointment"}
    good = [_ev(1, "o2o.kiosk.checkin", {"kind": "appointment", "outcome": "appointment.ok",
                                         "appointment": "P-8"}),
            _ev(2, "o2o.staff.alert", {**appt, "alert": "x1", "ref": {"appointment": "P-8"}}),
            _ev(3, "o2o.kiosk.checkin", {"kind": "appointment", "outcome": "appointment.ok",
                                         "appointment": "P-7"}),
            _ev(4, "o2o.staff.alert", {**appt, "alert": "x2", "ref": {"appointment": "P-7"}}),
            _ev(5, "o2o.staff.alert.acknowledged", {**appt, "alert": "x2", "by": "Ben"}),
            _ev(6, "o2o.staff.alert.escalated", {**appt, "alert": "x1", "level": 1})]
    assert check_staff(ex, Received(good, [])) == []
    too_early = [{**e, "data": {**e["data"], "outcome": "too-early"}} if e["id"] == "E3" else e
                 for e in good]
    assert check_staff(ex, Received(too_early, [])) == [
        "appointment check-ins: expected 2 appointment.ok, got ['appointment.ok', 'too-early']"]
    assert check_staff(ex, Received(good[:3] + good[4:], [])) == [
        "appointment arrivals: expected 2 alerts, got 1"]
    unacked = [e for e in good if e["id"] != "E5"]
    assert check_staff(ex, Received(unacked, [])) == [
        "arrivals acknowledged: expected {'Ben': 1}, got {}"]


def test_the_live_view_tells_every_staff_alert_in_the_stores_words() -> None:
    sc = scenario(APPOINTMENTS + '[[order]]\nid = "A-1042"\ncode = "K7Q2M9"\nfirst_name = "Ana"\n')
    story = Story(sc, expected(sc))

    def tell(t: str, **data: Any) -> str | None:
        return story.tell({"type": t, "seq": 1, "data": data}, "10:00")

    appt = {"kind": "appointment", "alert": "x1", "ref": {"appointment": "P-7"}}
    pickup = {"kind": "pickup", "alert": "x2", "ref": {"order": "A-1042", "code": "K7Q2M9"}}
    lines = [tell("o2o.staff.alert", **appt, cause="E1", level=0),
             tell("o2o.staff.alert.escalated", **appt, level=1, waited_s=10.0),
             tell("o2o.staff.alert.escalated", **appt, level=2, waited_s=20.0),
             tell("o2o.staff.alert.acknowledged", **appt, by="Ben", response_s=21.0),
             tell("o2o.staff.alert.closed", **appt, by="Ben", response_s=5.0, open_s=26.0),
             tell("o2o.staff.alert", **pickup, cause="E2", level=0),
             tell("o2o.staff.alert.closed", **pickup, by="handover", response_s=None,
                  open_s=30.0),
             tell("o2o.staff.alert", kind="beacon-silent", alert="x3",
                  ref={"beacon": "eddystone-uid:x"}, cause=None, level=0),
             tell("o2o.staff.alert.closed", kind="beacon-silent", alert="x3", by="agent",
                  response_s=None, open_s=60.0)]
    assert lines == [
        "the agent alerts staff: Eva has arrived for their fitting appointment",
        "nobody has taken the alert yet: it escalates (Eva has arrived for their fitting "
        "appointment)",
        None,  # louder again: told once
        "Ben takes the alert on the staff view (Eva has arrived for their fitting appointment)",
        "Ben marks it done: the alert closes (Eva has arrived for their fitting appointment)",
        "the agent alerts staff: Ana is here to pick up an order",
        "the order is handed over: the alert closes (Ana is here to pick up an order)",
        "the agent alerts staff: a beacon is not heard",
        "its cause is gone: the alert closes (a beacon is not heard)"]


def test_the_live_view_judges_an_appointments_check_in_against_the_scenario() -> None:
    sc = scenario(APPOINTMENTS)
    story = Story(sc, expected(sc))
    ok = story.tell({"type": "o2o.kiosk.checkin", "seq": 1, "data": {
        "kind": "appointment", "outcome": "appointment.ok", "via": "code",
        "appointment": "P-7"}}, "10:30")
    assert ok == "Eva is checked in for their appointment — as the scenario expects"
    early = story.tell({"type": "o2o.kiosk.checkin", "seq": 2, "data": {
        "kind": "appointment", "outcome": "too-early", "via": "code", "appointment": "P-8"}},
        "10:31")
    assert early == ("Noor's appointment check-in ends: too-early — NOT as the scenario "
                     "expects (checked in)")
    assert story.tally.counts["appointments"] == 2 and "pickups" not in story.tally.counts
