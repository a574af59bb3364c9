"""Sales at the till in a scenario file: each mistake named by its place; what the day must
leave upstream worked out from the file; and the collector check telling a sale counted
twice, a sale on another visit, an offer redeemed twice or not refused."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from simulators.scenario.expected import Received, check_till, expected
from simulators.scenario.model import ScenarioError, load, parse

SCENARIO = Path(__file__).resolve().parents[3] / "simulators" / "scenarios" / "till_sale.toml"
APP = "app:2f234454-cf6d-4a0f-adf2-f4911ba9ffa6:1:7"


def raw() -> dict[str, Any]:
    return tomllib.loads(SCENARIO.read_text())


@pytest.mark.parametrize(("change", "problem"), [
    (lambda r: r["sale"][1].update(offers=["C-9"]), r"sale\[1\]\.offers: \['C-9'\]"),
    (lambda r: r["sale"][1].update(receipt="R-1001"), r"sale\[1\]\.receipt: 'R-1001' is another"),
    (lambda r: r["sale"][0].update(app=8), r"sale\[0\]\.app: no \[\[shopper\]\] with app = 8"),
    (lambda r: r["sale"][0].update(lines=[]), r"sale\[0\]\.lines: a list"),
    (lambda r: r["sale"][0].update(total="12.50"), r"sale\[0\]\.total: '12.50' should be a int"),
    (lambda r: r["sale"][0].update(at="10:00"), r"sale\[0\]\.at: 10:00 is outside"),
    (lambda r: r["offer"][0].update(campaign="spring coffee"), r"offer\[0\]\.campaign"),
    (lambda r: r["offer"].append(dict(r["offer"][0])), r"offer\[1\]\.id: 'C-1001' is another"),
    (lambda r: r["scan"][0].update(offer="C-9"), r"scan\[0\]\.offer: no offer 'C-9'"),
    (lambda r: r["scan"][0].update(text="hello"), r"scan\[0\]: give either text or pickup, or an offer"),
])
def test_each_mistake_is_named_by_its_place(change: Any, problem: str) -> None:
    r = raw()
    change(r)
    with pytest.raises(ScenarioError, match=problem):
        parse(r)


def test_what_the_day_must_leave_upstream() -> None:
    ex = expected(load(SCENARIO))
    assert ex.sales == {"R-1001": "spring-coffee", "R-1002": None}
    assert ex.sale_visits == {"R-1001": APP}
    assert ex.redeemed == ["R-1001"] and dict(ex.offers_refused) == {"offer-used": 1}
    assert ex.scans == {"offer": 1}
    # the request the till posts: the offer's code in place of its name
    sale = load(SCENARIO).sales[0]
    assert sale.request({"C-1001": "O2OF1:X"}) == {
        "receipt": "R-1001", "total": 1250, "currency": "EUR", "payment": "card",
        "lines": [{"gtin": "4006381333931", "qty": 2, "amount": 1250}], "offers": ["O2OF1:X"]}


GOOD = [
    {"type": "o2o.ble.presence", "data": {"id": APP, "action": "enter", "visit": "V1"}},
    {"type": "o2o.pos.sale", "data": {"receipt": "R-1001", "campaign": "spring-coffee",
                                      "visit": "V1"}},
    {"type": "o2o.offer.redeemed", "data": {"receipt": "R-1001"}},
    {"type": "o2o.pos.sale", "data": {"receipt": "R-1002", "visit": "V1"}},
    {"type": "o2o.offer.refused", "data": {"receipt": "R-1002", "reason": "offer-used"}},
]


def test_the_collector_check_tells_each_way_the_till_went_wrong() -> None:
    ex = expected(load(SCENARIO))
    assert check_till(ex, Received(GOOD, [])) == []
    twice = [*GOOD, copy.deepcopy(GOOD[1])]
    assert "sales: expected each of" in check_till(ex, Received(twice, []))[0]
    other = copy.deepcopy(GOOD)
    other[1]["data"]["visit"] = "V2"
    assert "is not app:" in check_till(ex, Received(other, []))[0]
    nocampaign = copy.deepcopy(GOOD)
    del nocampaign[1]["data"]["campaign"]
    assert "campaign None, expected 'spring-coffee'" in check_till(ex, Received(nocampaign,
                                                                                []))[0]
    again = [*GOOD[:4], {"type": "o2o.offer.redeemed", "data": {"receipt": "R-1002"}}]
    problems = check_till(ex, Received(again, []))
    assert any("offers redeemed" in p for p in problems)
    assert any("offers refused" in p for p in problems)
