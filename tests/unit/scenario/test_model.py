"""Scenario files: what they describe, every mistake named by its place, and the outcome a
day must leave worked out from the file alone."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from simulators.scenario.expected import (
    Received,
    check,
    check_delivery,
    expected,
    expected_as_applied,
)
from simulators.scenario.model import ScenarioError, load, parse

SCENARIOS = Path(__file__).resolve().parents[3] / "simulators" / "scenarios"
BASE = """
[store]
id = "s"
opens = "09:00"
closes = "12:00"
[[beacon]]
name = "door"
x = 1.0
y = 0.0
battery_mv = [2600, 2400]
[tags]
shelf = { type = "ntag213", uid = "04a1b2c3d4e5f6", uri = "https://shop.example/p/1" }
stray = { type = "ntag213", uid = "04ffeeddccbbaa", role = "unknown" }
[[order]]
id = "A-1"
code = "K7Q2M9"
first_name = "Ann"
"""


def scenario(extra: str = "") -> Any:
    return parse(tomllib.loads(BASE + extra))


@pytest.mark.parametrize("name", ["store_day.toml", "short_visit.toml", "demo_morning.toml"])
def test_shipped_scenarios_load(name: str) -> None:
    sc = load(SCENARIOS / name)
    assert sc.length_s > 0 and sc.checkins and sc.taps


def test_store_day_has_every_fault() -> None:
    from simulators.scenario.model import FAULTS

    kinds = {f.kind for f in load(SCENARIOS / "store_day.toml").faults}
    assert kinds == set(FAULTS)


@pytest.mark.parametrize(("extra", "message"), [
    ('[[tap]]\nat = "09:10"\ntag = "nope"\n', "tap[0].tag: no tag 'nope' in [tags]"),
    ('[[tap]]\nat = "8:10"\ntag = "shelf"\n', "tap[0].at: 8:10 is outside opening hours"),
    ('[[tap]]\nat = "9h10"\ntag = "shelf"\n', 'tap[0].at: \'9h10\' is not a time of day'),
    ('[[checkin]]\nat = "09:10"\norder = "Z"\n', "checkin[0].order: no order 'Z'"),
    ('[[checkin]]\nat = "09:10"\norder = "A-1"\nvia = "fax"\n', "via is code or qr"),
    ('[[fault]]\nat = "09:10"\nkind = "meteor"\n', "fault[0].kind: 'meteor' is not one of"),
    ('[[fault]]\nat = "09:10"\nkind = "broker-down"\n', "fault[0].minutes: how long"),
    ('[[fault]]\nat = "09:10"\nkind = "clock-jump"\n', "fault[0].shift_min"),
    ('[[scan]]\nat = "09:10"\nexpect = "product"\n', "scan[0]: give either text or pickup"),
    ('[[shopper]]\nat = "09:10"\nwalk = ["door", "roof"]\nminutes = 5\n',
     "shopper[0].walk: ['roof']"),
    ('[[shopper]]\nat = "09:10"\nwalk = ["door"]\nminutes = "five"\n',
     "shopper[0].minutes: 'five' should be a float"),
])
def test_mistakes_are_named_by_their_place(extra: str, message: str) -> None:
    with pytest.raises(ScenarioError) as err:
        scenario(extra)
    assert message in str(err.value)


def test_bad_files_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read the scenario"):
        load(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[store\n")
    with pytest.raises(ScenarioError, match="is not valid TOML"):
        load(tmp_path / "bad.toml")
    (tmp_path / "tag.toml").write_text(BASE.replace('uid = "04a1b2c3d4e5f6"', 'uid = "04a1"'))
    with pytest.raises(ScenarioError, match=r"tags\.shelf\.uid: a ntag213 has a 7-byte UID"):
        load(tmp_path / "tag.toml")


def test_what_a_fault_takes_away_is_part_of_the_expectation() -> None:
    sc = scenario("""
[[tap]]
at = "09:10"
tag = "shelf"
[[tap]]
at = "09:40"
tag = "shelf"
[[tap]]
at = "10:00"
tag = "stray"
[[scan]]
at = "10:30"
text = "javascript:alert(1)"
expect = "rejected"
[[checkin]]
at = "10:40"
order = "A-1"
via = "qr"
score = 4
[[fault]]
at = "09:30"
kind = "nfc-unplugged"
minutes = 20
[[fault]]
at = "10:20"
kind = "camera-gone"
minutes = 30
""")
    ex = expected(sc)
    assert ex.taps == {"shelf:shelf": 1, "unregistered": 1} and ex.lost_taps == 1
    assert ex.scans == {} and ex.unseen_codes == 2  # the code, and the pickup QR
    assert ex.checkins == {"A-1": "code"}  # the shopper typed it instead
    assert ex.surveys == {4: 1}
    assert ex.low_battery == {"eddystone-uid:edd1ebeac04e5defa017:000000000001"}


def _event(seq: int, type_: str = "o2o.nfc.tap", data: dict[str, Any] | None = None,
           boot: str = "B") -> dict[str, Any]:
    return {"id": f"E{boot}{seq}", "seq": seq, "bootid": boot, "type": type_,
            "data": data or {"tag": {"kind": "shelf", "label": "shelf"}}}


def test_delivery_check_finds_gaps_missing_tails_and_doubles() -> None:
    ok = Received([_event(1), _event(2)], [{"bootid": "B", "gaps": [], "first_seq": 1,
                                             "last_seq": 2, "events": 2, "duplicates": 0}])
    assert check_delivery(ok, {"B": 2}) == []
    assert "committed up to seq 3" in check_delivery(ok, {"B": 3})[0]
    gap = Received([_event(1), _event(3)], [{"bootid": "B", "gaps": [[2, 2]], "first_seq": 1,
                                             "last_seq": 3, "events": 2, "duplicates": 0}])
    assert any("seq gaps" in p for p in check_delivery(gap, {"B": 3}))
    twice = Received([_event(1), _event(1)], ok.report[:1])
    assert any("stored twice" in p for p in check_delivery(twice, {"B": 1}))


def test_check_names_what_differs_and_any_address_upstream() -> None:
    sc = scenario('[[tap]]\nat = "09:10"\ntag = "shelf"\n[[checkin]]\nat = "09:20"\n'
                  'order = "A-1"\nvia = "code"\n')
    report = [{"bootid": "B", "gaps": [], "first_seq": 1, "last_seq": 3, "events": 3,
               "duplicates": 0}]
    good = Received([_event(1), _event(2, "o2o.kiosk.checkin", {
        "kind": "pickup", "outcome": "pickup.ready", "via": "code", "order": "A-1"}),
        _event(3, "o2o.ble.beacon.health", {
            "beacon": "eddystone-uid:edd1ebeac04e5defa017:000000000001",
            "status": "low-battery"})], report)
    assert check(sc, expected(sc), good, {"C3:00:00:00:00:01"}, {"B": 3}) == []
    leaky = Received([*good.events[:2], _event(3, "o2o.ble.presence", {
        "id": "c3:00:00:00:00:01", "action": "enter"})], report)
    problems = check(sc, expected(sc), leaky, {"C3:00:00:00:00:01"}, {"B": 3})
    assert any("low batteries not reported" in p for p in problems)
    assert any("Bluetooth addresses upstream: ['C3:00:00:00:00:01']" in p for p in problems)


def test_consent_withdrawn_before_a_visit_means_the_app_user_is_never_reported() -> None:
    shoppers = "".join(f'[[shopper]]\nat = "{at}"\napp = {app}\nwalk = ["door"]\n'
                       f"minutes = {minutes}\n"
                       for at, app, minutes in (("09:30", 5, 10), ("10:30", 6, 10),
                                                ("11:00", 7, 20)))
    sc = scenario(shoppers + """
[[consent]]
at = "09:10"
app = 5
state = "withdrawn"
[[consent]]
at = "10:00"
app = 6
state = "withdrawn"
[[consent]]
at = "10:20"
app = 6
state = "granted"
[[consent]]
at = "11:10"
app = 7
state = "withdrawn"
""")
    ex = expected(sc)
    key = "app:2f234454-cf6d-4a0f-adf2-f4911ba9ffa6:1:{}".format
    assert ex.withheld == {key(5)}
    assert ex.app_users == {key(6)}  # granted again before the visit
    # 7 withdrew during the visit: reported until then, so neither promised nor forbidden
    report = [{"bootid": "B", "gaps": [], "first_seq": 1, "last_seq": 2, "events": 2,
               "duplicates": 0}]
    got = Received([_event(1, "o2o.ble.presence", {"id": key(6), "action": "enter"}),
                    _event(2, "o2o.ble.presence", {"id": key(5), "action": "enter"})], report)
    assert f"reported although consent was withdrawn: ['{key(5)}']" in check(
        sc, ex, got, set(), {"B": 2})
    assert not any("withdrawn" in p for p in check(sc, ex, Received(got.events[:1], report),
                                                   set(), {"B": 2}))


def test_a_withdrawal_is_judged_from_when_it_reached_the_store() -> None:
    # sent at 09:45 while the link was down, applied at 10:30: a visit at 10:05 could not
    # have known it; one at 11:00 must be withheld; one whose document was never applied in
    # time is not judged either way
    shoppers = "".join(f'[[shopper]]\nat = "{at}"\napp = {app}\nwalk = ["door"]\n'
                       f"minutes = 10\n" for at, app in (("10:05", 2), ("11:00", 3),
                                                          ("11:00", 4)))
    sc = scenario(shoppers + "".join(f'[[consent]]\nat = "09:45"\napp = {app}\n'
                                     'state = "withdrawn"\n' for app in (2, 3, 4)))
    key = "app:2f234454-cf6d-4a0f-adf2-f4911ba9ffa6:1:{}".format
    assert expected(sc).withheld == {key(2), key(3), key(4)}  # as sent
    late = [replace(c, at=10.5 * 3600 - sc.opens_h * 3600) for c in sc.consents[:2]]
    ex = expected_as_applied(sc, late, unsure={4})
    assert ex.withheld == {key(3)}
    assert ex.app_users == {key(2)}
