"""Who may act on alerts and what raises one: the staff ops need the staff bus token (each
refusal says why and under which key it is counted); a check-in's answer names the alert its
arrival raised, the same one the committed event finds; a call that reached the agent late
(kept by the kiosk while the agent was away) raises no alert."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agent.bus.edge import Refused
from agent.bus.roles import StaffGate
from agent.checkin import CheckinService, StoreDb
from agent.contracts.alerts import DIGEST_PATTERN, token_digest
from agent.contracts.events import KIOSK_ASSIST, KIOSK_CHECKIN, STAFF_ALERT
from agent.envelope import rfc3339_utc
from agent.errors import Reason
from agent.storedb import StoreDatabase
from tests.unit.runtime.test_alerts_watch import Rig

TOKEN = "kN3v0-staff-view-token-for-tests-only-0123"


@pytest.fixture
def store(tmp_path: Path) -> Any:
    db = StoreDatabase.open(tmp_path / "store.db")
    yield db
    db.close()


def refused(gate: StaffGate, op: str, msg: dict[str, Any]) -> Refused:
    with pytest.raises(Refused) as caught:
        gate.check(op, msg)
    assert caught.value.reason is Reason.FORBIDDEN
    return caught.value


def test_staff_ops_need_a_token_whose_digest_the_agent_holds() -> None:
    digest = token_digest(TOKEN)
    assert DIGEST_PATTERN.fullmatch(digest)
    gate = StaffGate([token_digest("another-staff-tool-token-000"), digest])
    for op in ("alerts", "alert-ack", "alert-close"):
        gate.check(op, {"op": op, "token": TOKEN})  # the staff view
        no = refused(gate, op, {"op": op, "id": "A", "by": "Anna"})  # the kiosk
        assert no.key == f"{op}:staff-only" and '"token"' in str(no)
        wrong = refused(gate, op, {"op": op, "token": TOKEN[:-1] + "x"})
        assert wrong.key == f"{op}:wrong-token" and "bus_tokens" in str(wrong)
    # hostile or careless tokens: each answered, none raises anything else
    for bad in (None, 7, True, ["t"], {"t": 1}, "", "short", "x" * 10_000, "\udc80" * 20):
        msg = {"op": "alert-ack", "token": bad} if bad is not None else {"op": "alert-ack"}
        assert refused(gate, "alert-ack", msg).key.startswith("alert-ack:")
    # everything else stays open to every client
    for op in ("emit", "checkin", "queue", "handover", "status", "kpis"):
        gate.check(op, {"op": op})


def test_with_no_token_configured_nobody_may_act_and_is_told_how_to_set_one() -> None:
    no = refused(StaffGate(()), "alert-close", {"op": "alert-close", "token": TOKEN})
    assert no.key == "alert-close:staff-only"
    assert "o2o-edge staff-view bus-token" in str(no) and "[staff] bus_tokens" in str(no)


def test_a_check_in_answer_names_the_alert_its_arrival_raised(store: StoreDatabase) -> None:
    rig = Rig(store)
    db = StoreDb(store)
    db.replace(
        "orders",
        [
            {
                "order_id": "A-1",
                "code": "K7Q2M9",
                "first_name": "Anna",
                "status": "ready",
                "eta_min": 3,
                "store": "store-1",
            }
        ],
    )
    rig.watch._orders = db
    emitted: list[tuple[str, dict[str, Any], str | None]] = []
    svc = CheckinService(
        db,
        "store-1",
        lambda t, d, event_id=None: emitted.append((t, d, event_id)),
        arrived=rig.watch.arrived,
    )
    answer = svc.checkin({"kind": "pickup", "code": "K7Q2M9"})
    assert answer["outcome"] == "pickup.ready"
    [(etype, data, cause)] = emitted
    assert etype == KIOSK_CHECKIN and data["order"] == "A-1" and cause
    [alert] = rig.live()
    assert answer["alert"] == alert["id"] and alert["cause"] == cause
    # the committed event comes by after: the same alert stands, nothing is raised twice
    body = json.dumps({"id": cause, "type": KIOSK_CHECKIN, "data": data})
    rig.watch.observe([(KIOSK_CHECKIN, cause, body)])
    assert [a["id"] for a in rig.live()] == [alert["id"]]
    assert len(rig.rec.of(STAFF_ALERT)) == 1
    # the shopper checks in again while it stands: the answer names that same alert
    assert svc.checkin({"kind": "pickup", "code": "K7Q2M9"})["alert"] == alert["id"]
    # no arrival, no alert, no id
    assert "alert" not in svc.checkin({"kind": "pickup", "code": "NOPE99"})

    # the store database failing under the alert: checked in all the same, no alert named
    def failing(kind: str, ref_id: str, cause: str) -> str | None:
        raise sqlite3.OperationalError("database or disk is full")

    svc.arrived = failing
    emitted.clear()
    answer = svc.checkin({"kind": "pickup", "code": "K7Q2M9"})
    assert answer["outcome"] == "pickup.ready" and "alert" not in answer
    assert [t for t, _, _ in emitted] == [KIOSK_CHECKIN]
    db.close()


def _call(rig: Rig, pressed: float | None, committed: float, counter: bool | None = None) -> None:
    data: dict[str, Any] = {"screen": "home"}
    if pressed is not None:
        data["kiosk_time"] = pressed
    if counter is not None:
        data["counter"] = counter
    rig.seq += 1
    body = json.dumps(
        {"id": f"E{rig.seq}", "type": KIOSK_ASSIST, "time": rfc3339_utc(committed), "data": data}
    )
    rig.watch.observe([(KIOSK_ASSIST, f"E{rig.seq}", body)])


def test_a_call_that_reaches_the_agent_late_raises_no_alert(store: StoreDatabase) -> None:
    rig = Rig(store)
    now = 1_800_000_000.0
    _call(rig, now - 600, now)  # pressed ten minutes ago, kept while the agent was down
    _call(rig, now - 1, now, counter=True)  # the kiosk sent the shopper to the counter
    assert rig.live() == [] and rig.watch.late_calls == 2
    _call(rig, now - 0.05, now)  # a live call
    _call(rig, None, now)  # no kiosk time (another client): raised
    _call(rig, "yesterday", now)  # type: ignore[arg-type]  # careless: raised, not late
    assert len(rig.live()) == 3 and rig.watch.late_calls == 2
