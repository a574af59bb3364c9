"""Staff alerts: raised, escalated on a fake clock while nobody acknowledges them, acknowledged
and closed over the bus operations, refusals answered with their reason, and the open ones
still there after a restart (they live in the store database)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.contracts import alerts as contract
from agent.contracts.alerts import MAX_LEVEL, AlertKind
from agent.contracts.events import (
    REGISTRY,
    STAFF_ALERT,
    STAFF_ALERT_ACKNOWLEDGED,
    STAFF_ALERT_CLOSED,
    STAFF_ALERT_ESCALATED,
)
from agent.errors import AgentError, Reason
from agent.services.alerts import MAX_LIVE, Alerts
from agent.services.alerts_store import AlertStore
from agent.storedb import StoreDatabase
from tests.unit.runtime.fakes import Recorder


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Any:
    store = StoreDatabase.open(tmp_path / "store.db")
    yield store
    store.close()


def make(db: StoreDatabase, clock: Clock, escalate_after_s: float = 60.0,
         ) -> tuple[Alerts, Recorder]:
    rec = Recorder()
    return Alerts(AlertStore(db), rec, escalate_after_s, clock=clock), rec


def call(alerts: Alerts, cause: str = "01CAUSE") -> dict[str, Any]:
    alert = alerts.raise_alert(AlertKind.CALL_STAFF, "A shopper at the kiosk asks for help",
                               {"screen": "home"}, cause=cause)
    assert alert is not None
    return dict(alert)


def test_a_raised_alert_is_listed_and_recorded_without_its_text(db: StoreDatabase) -> None:
    clock = Clock()
    alerts, rec = make(db, clock)
    alert = call(alerts)
    assert alert["state"] == "open" and alert["level"] == 0
    assert alert["escalate_at"] == clock.now + 60
    [event] = rec.of(STAFF_ALERT)
    assert event == {"alert": alert["id"], "kind": "call-staff", "ref": {"screen": "home"},
                     "cause": "01CAUSE", "level": 0}
    assert "subject" not in event  # the text may name a shopper: it stays in the store
    assert set(event) == set(REGISTRY[STAFF_ALERT].payload.__annotations__)
    answer = alerts.listing({})
    assert answer["open"] == 1 and answer["limit"] == contract.ALERTS_DEFAULT
    assert [a["id"] for a in answer["alerts"]] == [alert["id"]]
    assert answer["alerts"][0]["subject"] == "A shopper at the kiosk asks for help"


def test_unacknowledged_alerts_escalate_each_period_up_to_the_bound(db: StoreDatabase) -> None:
    clock = Clock()
    alerts, rec = make(db, clock, escalate_after_s=60)
    alert = call(alerts)
    clock.now += 59
    assert alerts.tick() == 0  # not yet
    levels = []
    for _ in range(MAX_LEVEL + 3):
        clock.now += 60
        alerts.tick()
        levels.append(alerts.store.get(alert["id"])["level"])  # type: ignore[index]
    assert levels == [1, 2, 3, 3, 3, 3] and MAX_LEVEL == 3
    escalated = rec.of(STAFF_ALERT_ESCALATED)
    assert [e["level"] for e in escalated] == [1, 2, 3]  # said once per level, then quiet
    assert escalated[0]["waited_s"] == 119.0
    assert alerts.store.get(alert["id"])["escalate_at"] is None  # type: ignore[index]


def test_acknowledged_alerts_stop_escalating(db: StoreDatabase) -> None:
    clock = Clock()
    alerts, rec = make(db, clock, escalate_after_s=60)
    alert = call(alerts)
    clock.now += 61
    assert alerts.tick() == 1
    clock.now += 4
    answer = alerts.acknowledge({"id": alert["id"], "by": "Anna"})
    assert answer["outcome"] == "acknowledged"
    assert answer["alert"]["state"] == "acknowledged"
    assert answer["alert"]["acknowledged_by"] == "Anna"
    assert answer["alert"]["level"] == 1 and answer["alert"]["escalate_at"] is None
    clock.now += 600
    assert alerts.tick() == 0
    assert rec.of(STAFF_ALERT_ACKNOWLEDGED) == [
        {"alert": alert["id"], "kind": "call-staff", "by": "Anna", "response_s": 65.0}]


def test_ack_then_close_records_both_response_times(db: StoreDatabase) -> None:
    clock = Clock()
    alerts, rec = make(db, clock)
    alert = call(alerts)
    clock.now += 10
    alerts.acknowledge({"id": alert["id"], "by": "Anna"})
    clock.now += 90
    answer = alerts.close({"id": alert["id"], "by": "Anna"})
    assert answer["outcome"] == "closed"
    assert answer["alert"]["closed_by"] == "Anna" and answer["alert"]["state"] == "closed"
    assert rec.of(STAFF_ALERT_CLOSED) == [{"alert": alert["id"], "kind": "call-staff",
                                           "by": "Anna", "response_s": 90.0, "open_s": 100.0}]
    listed = alerts.listing({})
    assert listed["open"] == 0 and listed["alerts"][0]["state"] == "closed"  # recent


def test_closing_without_an_ack_has_no_ack_to_close_time(db: StoreDatabase) -> None:
    clock = Clock()
    alerts, rec = make(db, clock)
    alert = call(alerts)
    clock.now += 30
    assert alerts.close({"id": alert["id"], "by": "Ben"})["outcome"] == "closed"
    assert rec.of(STAFF_ALERT_CLOSED)[0]["response_s"] is None
    assert rec.of(STAFF_ALERT_CLOSED)[0]["open_s"] == 30.0


def test_refusals_say_why_and_change_nothing(db: StoreDatabase) -> None:
    clock = Clock()
    alerts, rec = make(db, clock)
    alert = call(alerts)
    for bad in ({"id": alert["id"]}, {"id": alert["id"], "by": ""},
                {"id": alert["id"], "by": "  "}, {"id": alert["id"], "by": "x" * 41},
                {"id": alert["id"], "by": "Anna\x1b[2J"}, {"id": alert["id"], "by": 7},
                {"by": "Anna"}, {"id": 12, "by": "Anna"}, {"id": "x" * 65, "by": "Anna"}):
        for op in (alerts.acknowledge, alerts.close):
            answer = op(bad)
            assert answer["outcome"] == "invalid", bad
            assert answer["error"] and "alert" not in answer
    assert alerts.acknowledge({"id": "01NOSUCH", "by": "Anna"})["outcome"] == "unknown-alert"
    assert alerts.close({"id": "01NOSUCH", "by": "Anna"})["outcome"] == "unknown-alert"
    assert alerts.store.get(alert["id"])["state"] == "open"  # type: ignore[index]
    assert rec.of(STAFF_ALERT_ACKNOWLEDGED) == rec.of(STAFF_ALERT_CLOSED) == []
    with pytest.raises(AgentError) as refused:
        alerts.listing({"limit": 0})
    assert refused.value.reason is Reason.BUS_PROTOCOL and "1 to 200" in str(refused.value)
    for limit in (True, "5", contract.ALERTS_MAX + 1, 1.5):
        with pytest.raises(AgentError):
            alerts.listing({"limit": limit})


def test_a_second_ack_or_close_is_answered_with_who_did_it(db: StoreDatabase) -> None:
    clock = Clock()
    alerts, rec = make(db, clock)
    alert = call(alerts)
    assert alerts.acknowledge({"id": alert["id"], "by": "Anna"})["outcome"] == "acknowledged"
    # the same person again (a retry after a lost answer): the same answer, nothing twice
    assert alerts.acknowledge({"id": alert["id"], "by": " Anna "})["outcome"] == "acknowledged"
    other = alerts.acknowledge({"id": alert["id"], "by": "Ben"})
    assert other["outcome"] == "already-acknowledged" and "Anna" in other["error"]
    assert other["alert"]["acknowledged_by"] == "Anna"
    assert len(rec.of(STAFF_ALERT_ACKNOWLEDGED)) == 1
    assert alerts.close({"id": alert["id"], "by": "Ben"})["outcome"] == "closed"
    assert alerts.close({"id": alert["id"], "by": "Ben"})["outcome"] == "closed"  # a retry
    late = alerts.close({"id": alert["id"], "by": "Anna"})
    assert late["outcome"] == "already-closed" and "Ben" in late["error"]
    after = alerts.acknowledge({"id": alert["id"], "by": "Cleo"})
    assert after["outcome"] == "already-closed"
    assert len(rec.of(STAFF_ALERT_CLOSED)) == 1


def test_the_same_thing_is_one_alert_until_it_is_closed(db: StoreDatabase) -> None:
    clock = Clock()
    alerts, rec = make(db, clock)
    first = alerts.raise_alert(AlertKind.BEACON_SILENT, "Beacon b1 is not heard",
                               {"beacon": "b1"}, dedupe="silent:b1")
    again = alerts.raise_alert(AlertKind.BEACON_SILENT, "Beacon b1 is not heard",
                               {"beacon": "b1"}, dedupe="silent:b1")
    assert first is not None and again is not None and again["id"] == first["id"]
    assert len(rec.of(STAFF_ALERT)) == 1
    closed = alerts.close_for("silent:b1")
    assert closed is not None and closed["closed_by"] == "agent"
    third = alerts.raise_alert(AlertKind.BEACON_SILENT, "Beacon b1 is not heard",
                               {"beacon": "b1"}, dedupe="silent:b1")
    assert third is not None and third["id"] != first["id"]
    assert alerts.close_for("silent:nobody") is None


def test_live_alerts_are_bounded(db: StoreDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agent.services.alerts.MAX_LIVE", 3)
    clock = Clock()
    alerts, rec = make(db, clock)
    raised = [alerts.raise_alert(AlertKind.CALL_STAFF, "help", {}) for _ in range(5)]
    assert [a is not None for a in raised] == [True, True, True, False, False]
    assert alerts.refused_full == 2 and len(rec.of(STAFF_ALERT)) == 3
    assert MAX_LIVE == 500


def test_the_subject_is_one_line_of_bounded_text(db: StoreDatabase) -> None:
    alerts, _ = make(db, Clock())
    alert = alerts.raise_alert(AlertKind.PICKUP, "Anna\nis\there\x1b[0m " + "x" * 500, {})
    assert alert is not None
    assert "\n" not in alert["subject"] and "\x1b" not in alert["subject"]
    assert alert["subject"].startswith("Anna is here [0m")
    assert len(alert["subject"]) == contract.SUBJECT_MAX


def test_a_restart_keeps_open_alerts_and_their_escalation(tmp_path: Path) -> None:
    clock = Clock()
    store = StoreDatabase.open(tmp_path / "store.db")
    alerts, _ = make(store, clock, escalate_after_s=60)
    alert = call(alerts)
    done = call(alerts, cause="01OTHER")
    alerts.close({"id": done["id"], "by": "Anna"})
    store.close()

    store = StoreDatabase.open(tmp_path / "store.db")  # the agent again
    try:
        alerts, _ = make(store, clock, escalate_after_s=60)
        listed = alerts.listing({})
        assert listed["open"] == 1
        assert [(a["id"], a["state"]) for a in listed["alerts"]] == [
            (alert["id"], "open"), (done["id"], "closed")]
        assert listed["alerts"][0]["cause"] == "01CAUSE"
        clock.now += 61
        assert alerts.tick() == 1  # its escalation time survived with it
        assert alerts.acknowledge({"id": alert["id"], "by": "Anna"})["outcome"] == \
            "acknowledged"
    finally:
        store.close()


def test_listing_is_bounded_live_first_then_recent_closed(db: StoreDatabase) -> None:
    clock = Clock()
    alerts, _ = make(db, clock)
    ids = []
    for i in range(6):
        clock.now += 1
        ids.append(call(alerts, cause=f"c{i}")["id"])
    for i in (0, 1, 2):
        clock.now += 1
        alerts.close({"id": ids[i], "by": "Anna"})
    answer = alerts.listing({"limit": 4})
    assert answer["open"] == 3 and answer["limit"] == 4
    # live oldest first, then the closed ones, the latest closed first
    assert [a["id"] for a in answer["alerts"]] == [ids[3], ids[4], ids[5], ids[2]]


def test_retention_and_erasure_of_the_alerts_table(db: StoreDatabase) -> None:
    clock = Clock()
    alerts, _ = make(db, clock)
    old = alerts.raise_alert(AlertKind.PICKUP, "Anna is here for order K7Q2M9",
                             {"order": "A-1", "code": "K7Q2M9"}, dedupe="pickup:A-1")
    live = alerts.raise_alert(AlertKind.PICKUP, "Ben is here for order B2B2B2",
                              {"order": "B-2", "code": "B2B2B2"}, dedupe="pickup:B-2")
    assert old is not None and live is not None
    alerts.close({"id": old["id"], "by": "Anna"})
    assert alerts.store.retention_sweep(clock.now + 1) == {"staff_alerts": 1}
    assert alerts.store.get(live["id"]) is not None  # a live alert stays however old
    assert alerts.store.erase_rows_of("b2b2b2") == {"staff_alerts": 1}  # by its code
    assert alerts.store.get(live["id"]) is None
