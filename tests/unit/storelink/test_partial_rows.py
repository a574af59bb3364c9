"""An orders or appointments increment patches only the fields its rows carry: a status-only
row keeps the order's code, first name and ETA; a new order in an increment still needs what
a new row needs; a snapshot stays whole rows; an order made ready while its shopper is
checked in is told to the staff alerts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.checkin import StoreDb
from agent.keys import public_key_text
from agent.storelink.apply import store_data_appliers
from agent.storelink.cache import LinkCache
from agent.storelink.docs import sign
from agent.storelink.receiver import DocReceiver

NOW = 1_796_000_000.0
KEY = Ed25519PrivateKey.generate()
ORDERS = "o2o/v1/berlin-01/all/orders"
APPOINTMENTS = "o2o/v1/berlin-01/all/appointments"
ANNA = {"order_id": "A-1", "code": "K7Q2M9", "first_name": "Anna", "status": "preparing",
        "eta_min": 12, "store": "berlin-01"}


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.db = StoreDb(tmp_path / "store.db")
        self.ready: list[list[str]] = []
        self.version = 0
        self.receiver = DocReceiver(
            "berlin-01", "pi-1", [public_key_text(KEY.public_key())],
            LinkCache(tmp_path / "store.db"), store_data_appliers(self.db, self.ready.append),
            lambda t, d: None, clock=lambda: NOW)

    def send(self, kind: str, mode: str, rows: list[dict[str, Any]]) -> bool:
        self.version += 1
        raw = sign(KEY, kind=kind, store="berlin-01", device="all", version=self.version,
                   issued=NOW - 10, expires=NOW + 3600, body={"mode": mode, "rows": rows})
        topic = ORDERS if kind == "orders" else APPOINTMENTS
        return self.receiver.handle(topic, raw) is not None

    def order(self, order_id: str) -> dict[str, Any]:
        row = self.db.order(order_id)
        assert row is not None
        return row


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_a_status_only_increment_keeps_code_name_and_eta(rig: Rig) -> None:
    assert rig.send("orders", "snapshot", [ANNA])
    assert rig.send("orders", "increment", [{"order_id": "A-1", "status": "ready"}])
    row = rig.order("A-1")
    assert (row["code"], row["first_name"], row["eta_min"], row["store"], row["status"]) == \
        ("K7Q2M9", "Anna", 12, "berlin-01", "ready")


def test_an_increment_changes_just_what_it_carries(rig: Rig) -> None:
    assert rig.send("orders", "snapshot", [ANNA])
    assert rig.send("orders", "increment", [{"order_id": "A-1", "code": "NEW123"},
                                            {"order_id": "A-1b", "code": "ZZZ999"}])
    row = rig.order("A-1")
    assert (row["code"], row["first_name"], row["status"], row["eta_min"]) == \
        ("NEW123", "Anna", "preparing", 12)
    # a new order in an increment gets the defaults for the rest, as an import gives them
    new = rig.order("A-1b")
    assert (new["first_name"], new["status"], new["eta_min"]) == ("", "preparing", 3)


def test_a_new_order_without_code_or_name_is_refused_whole(rig: Rig) -> None:
    assert rig.send("orders", "snapshot", [ANNA])
    assert not rig.send("orders", "increment", [{"order_id": "A-1", "status": "ready"},
                                                {"order_id": "X-9", "status": "ready"}])
    assert rig.receiver.refused["malformed"] == 1
    assert rig.order("A-1")["status"] == "preparing"  # nothing of the document applied
    assert rig.db.order("X-9") is None


def test_a_bad_field_in_an_increment_is_still_refused(rig: Rig) -> None:
    assert rig.send("orders", "snapshot", [ANNA])
    assert not rig.send("orders", "increment", [{"order_id": "A-1", "status": "lost"}])
    assert not rig.send("orders", "increment", [{"order_id": "A-1", "eta_min": 999}])
    assert rig.receiver.refused["malformed"] == 2 and rig.order("A-1")["eta_min"] == 12


def test_a_snapshot_still_replaces_whole_rows(rig: Rig) -> None:
    assert rig.send("orders", "snapshot", [ANNA])
    assert rig.send("orders", "snapshot", [{"order_id": "A-1", "code": "K7Q2M9"}])
    row = rig.order("A-1")
    assert (row["first_name"], row["eta_min"], row["store"]) == ("", 3, "")


def test_appointments_patch_too_and_a_new_one_needs_its_time(rig: Rig) -> None:
    appt = {"appt_id": "P-1", "code": "APPT01", "first_name": "Cleo", "service": "fitting",
            "at": NOW + 600}
    assert rig.send("appointments", "snapshot", [appt])
    assert rig.send("appointments", "increment", [{"appt_id": "P-1", "at": NOW + 1200}])
    row = rig.db.appointment("P-1")
    assert row is not None
    assert (row["code"], row["first_name"], row["service"], row["at"]) == \
        ("APPT01", "Cleo", "fitting", NOW + 1200)
    assert not rig.send("appointments", "increment", [{"appt_id": "P-2", "code": "APPT02"}])
    assert rig.db.appointment("P-2") is None


def test_an_order_made_ready_while_its_shopper_waits_is_told(rig: Rig) -> None:
    waiting = {**ANNA, "order_id": "A-2", "code": "WAIT22"}
    gone = {**ANNA, "order_id": "A-3", "code": "GONE33"}
    assert rig.send("orders", "snapshot", [ANNA, waiting, gone])
    rig.db.mark("orders", "A-2", "checked_in_at")
    rig.db.mark("orders", "A-3", "checked_in_at")
    rig.db.mark("orders", "A-3", "handed_over_at")
    assert rig.send("orders", "increment", [{"order_id": o, "status": "ready"}
                                            for o in ("A-1", "A-2", "A-3")])
    assert rig.ready == [["A-2"]]  # not A-1 (not here) nor A-3 (handed over already)
    # ready again: nothing new to tell
    assert rig.send("orders", "increment", [{"order_id": "A-2", "status": "ready"}])
    assert rig.ready == [["A-2"]]
