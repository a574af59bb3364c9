"""Check-in answers from the store's data, the events that record them, and imports that are
all-or-nothing with every bad row named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.checkin import CheckinService, StoreDb
from agent.checkin.importer import ImportProblem, parse_file
from agent.errors import AgentError, Reason

NOW = 1_796_000_000.0


@pytest.fixture
def svc(tmp_path: Path) -> tuple[CheckinService, list[tuple[str, Any]]]:
    db = StoreDb(tmp_path / "store.db")
    db.replace("orders", [
        {"order_id": "A-1042", "code": "K7Q2M9", "first_name": "Anna", "status": "preparing",
         "eta_min": 3, "store": "store-1"},
        {"order_id": "A-1043", "code": "READY1", "first_name": "Ben", "status": "ready",
         "eta_min": 0, "store": ""},
        {"order_id": "A-1044", "code": "OTHER1", "first_name": "Cem", "status": "ready",
         "eta_min": 0, "store": "store-9"},
        {"order_id": "A-1045", "code": "GONE01", "first_name": "Dora", "status": "cancelled",
         "eta_min": 0, "store": ""}])
    db.replace("appointments", [
        {"appt_id": "P-7", "code": "APPT77", "first_name": "Eva", "at": NOW + 3600,
         "service": "tailor"},
        {"appt_id": "P-8", "code": "APPT88", "first_name": "Finn", "at": NOW + 600,
         "service": "tailor"}])
    db.replace("loyalty", [{"card": "loy0012345678", "first_name": "Gil", "points": 120}])
    events: list[tuple[str, Any]] = []
    return CheckinService(db, "store-1", lambda t, d: events.append((t, d)),
                          early_min=30, clock=lambda: NOW), events


def test_pickup_outcomes(svc: tuple[CheckinService, list[tuple[str, Any]]]) -> None:
    s, events = svc
    assert s.checkin({"kind": "pickup", "code": "k7q2m9"}) == {
        "outcome": "pickup.ok", "name": "Anna", "minutes": 3}
    assert s.checkin({"kind": "pickup", "order": "A-1043", "via": "qr"})["outcome"] == \
        "pickup.ready"
    assert s.checkin({"kind": "pickup", "code": "OTHER1"})["outcome"] == "other-store"
    assert s.checkin({"kind": "pickup", "code": "GONE01"}) == {"outcome": "not-found"}
    assert s.checkin({"kind": "pickup", "code": "NOPE99"}) == {"outcome": "not-found"}
    assert s.checkin({"kind": "pickup", "code": "x' OR 1=1 --"}) == {"outcome": "invalid"}
    assert [o["order_id"] for o in s.db.queue()[0]] == ["A-1042", "A-1043"]
    assert s.handover("A-1042") == {"outcome": "handed-over"}
    assert s.checkin({"kind": "pickup", "code": "K7Q2M9"})["outcome"] == "already"
    assert [o["order_id"] for o in s.db.queue()[0]] == ["A-1043"]
    kinds = [(t, d["outcome"], d.get("order"), d["via"]) for t, d in events
             if t == "o2o.kiosk.checkin"]
    assert kinds[:2] == [("o2o.kiosk.checkin", "pickup.ok", "A-1042", "code"),
                         ("o2o.kiosk.checkin", "pickup.ready", "A-1043", "qr")]
    assert "Anna" not in json.dumps(events) and "Ben" not in json.dumps(events)
    assert events[-2][0] == "o2o.kiosk.handover"


def test_appointments_and_loyalty(svc: tuple[CheckinService, list[tuple[str, Any]]]) -> None:
    s, _ = svc
    early = s.checkin({"kind": "appointment", "code": "APPT77"})
    assert early["outcome"] == "too-early" and early["name"] == "Eva"
    ok = s.checkin({"kind": "appointment", "code": "APPT88"})
    assert ok["outcome"] == "appointment.ok" and len(ok["time"]) == 5
    assert s.checkin({"kind": "loyalty", "card": "LOY0012345678"}) == {
        "outcome": "loyalty.ok", "name": "Gil", "points": 120}
    assert s.checkin({"kind": "loyalty", "card": "anon:abc"})["outcome"] == "not-found"
    assert s.checkin({"kind": "refund"})["outcome"] == "invalid"


def test_import_csv_and_json(tmp_path: Path) -> None:
    csv_file = tmp_path / "orders.csv"
    csv_file.write_text("order_id,code,first_name,status,eta_min\n"
                        "A-1,ABCD12,Anna,ready,0\nA-2,,Ben,,\n")
    assert parse_file(csv_file)["orders"][1] == {
        "first_name": "Ben", "order_id": "A-2", "code": None, "status": "preparing",
        "eta_min": 3, "store": ""}
    js = tmp_path / "day.json"
    js.write_text(json.dumps({"appointments": [
        {"appt_id": "P-1", "code": "APPT01", "first_name": "Eva",
         "at": "2026-12-01T10:30:00+01:00"}], "loyalty": [{"card": "04A1B2", "points": 5}]}))
    got = parse_file(js)
    assert got["appointments"][0]["at"] == 1796117400.0
    assert got["loyalty"][0]["card"] == "04a1b2"


def test_a_bad_file_is_refused_whole_with_each_row_named(tmp_path: Path) -> None:
    bad = tmp_path / "orders.csv"
    bad.write_text("order_id,code,first_name,status,eta_min\n"
                   "A-1,ABCD12,Anna,ready,0\n"
                   "A-2,no!,Ben,shipped,-4\n"
                   "A-1,,Cem,,\n"
                   ",,\u202eDan,,\n")
    with pytest.raises(ImportProblem) as exc:
        parse_file(bad)
    text = str(exc.value)
    assert text.startswith("nothing was imported")
    for expected in ("line 3: code must be 4-10", "line 3: status must be one of",
                     "line 3: eta_min must be", "line 4: 'A-1' appears twice",
                     "line 5: first_name must be", "line 5: order_id must be"):
        assert expected in text
    naive = tmp_path / "appts.json"
    naive.write_text('[{"appt_id": "P-1", "at": "2026-12-01T10:30:00"}]')
    with pytest.raises(ImportProblem, match="a time with its zone"):
        parse_file(naive)
    with pytest.raises(ImportProblem, match="cannot tell what the file holds"):
        (tmp_path / "x.csv").write_text("name,points\nx,1\n")
        parse_file(tmp_path / "x.csv")


def test_the_recorded_events_keep_their_wire_shape(
        svc: tuple[CheckinService, list[tuple[str, Any]]]) -> None:
    """Built as the registry's payload types, the events upstream reads are the same JSON:
    the same keys in the same order, and an odd `via` still recorded as a typed code."""
    s, events = svc
    s.checkin({"kind": "pickup", "code": "K7Q2M9", "via": ["qr"]})
    s.checkin({"kind": "appointment", "code": "APPT88", "via": "nfc"})
    s.checkin({"kind": "loyalty", "card": "loy0012345678"})
    s.handover("A-1043")  # never checked in: no wait to tell
    assert [(t, json.dumps(d)) for t, d in events] == [
        ("o2o.kiosk.checkin", '{"kind": "pickup", "outcome": "pickup.ok", "via": "code", '
                              '"order": "A-1042"}'),
        ("o2o.kiosk.checkin", '{"kind": "appointment", "outcome": "appointment.ok", '
                              '"via": "nfc", "appointment": "P-8"}'),
        ("o2o.kiosk.checkin", '{"kind": "loyalty", "outcome": "loyalty.ok", "via": "code"}'),
        ("o2o.kiosk.handover", '{"order": "A-1043", "waited_s": null}')]


def test_a_new_row_an_increment_cannot_complete_is_an_agent_error(tmp_path: Path) -> None:
    """Under the package's one root, with the store link's reason; nothing is written."""
    db = StoreDb(tmp_path / "store.db")
    try:
        with pytest.raises(AgentError, match="needs a code or a first_name") as raised:
            db.patch("orders", [{"order_id": "A-9", "status": "ready"}])
        assert raised.value.reason is Reason.DOCUMENT and db.order("A-9") is None
    finally:
        db.close()
