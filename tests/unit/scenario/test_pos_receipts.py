"""The till simulator's receipts file: each bad line refused by its number and what it
should be; a good file read in order."""

from __future__ import annotations

import pytest

from simulators.errors import ScenarioError
from simulators.pos import PosSimulator, Receipt, load_receipts


def test_a_good_file() -> None:
    got = load_receipts(['{"at": 0, "action": "sale", "request": {"receipt": "R-1"}}', "",
                         '{"at": 2.5, "action": "offer-redeem", "request": {}}'])
    assert got == [Receipt(0.0, "sale", {"receipt": "R-1"}),
                   Receipt(2.5, "offer-redeem", {})]


@pytest.mark.parametrize(("line", "problem"), [
    ("{", "receipts:2: not JSON"),
    ("[]", 'receipts:2: an object {"at", "action", "request"}'),
    ('{"at": 1, "action": "sale", "request": {}, "x": 1}', "an object"),
    ('{"at": -1, "action": "sale", "request": {}}', "at must be seconds"),
    ('{"at": true, "action": "sale", "request": {}}', "at must be seconds"),
    ('{"at": 1, "action": "steal", "request": {}}', "action must be one of sale, refund"),
    ('{"at": 1, "action": "sale", "request": []}', "request must be an object"),
    ('{"at": 0.5, "action": "sale", "request": {}}', "must be in time order"),
])
def test_bad_lines_are_named(line: str, problem: str) -> None:
    with pytest.raises(ScenarioError, match=problem.replace("{", r"\{").replace("[", r"\[")):
        load_receipts(['{"at": 1, "action": "sale", "request": {}}', line])


def test_a_till_posts_over_http_only() -> None:
    with pytest.raises(ScenarioError, match="http:// or https://"):
        PosSimulator("file:///etc/passwd", "t")
