"""What raises and settles staff alerts: committed events picked out on the writer's thread
and read by the alerts task; an order made ready while its shopper waits; a component, reader
or camera down for long enough; the outbox filling."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from agent.contracts.events import (
    BLE_BEACON_HEALTH,
    KIOSK_ASSIST,
    KIOSK_CHECKIN,
    KIOSK_HANDOVER,
    NFC_TAP,
    STAFF_ALERT,
)
from agent.outbox import Committed
from agent.services.alerts import Alerts
from agent.services.alerts_store import AlertStore
from agent.services.alerts_watch import AlertWatch
from agent.storedb import StoreDatabase
from tests.unit.runtime.fakes import Recorder

ANNA = {"order_id": "A-1", "code": "K7Q2M9", "first_name": "Anna", "status": "preparing",
        "eta_min": 4, "checked_in_at": None, "handed_over_at": None}
CLEO = {"appt_id": "P-1", "code": "APPT01", "first_name": "Cleo", "service": "fitting",
        "at": time.mktime((2026, 12, 2, 10, 30, 0, 0, 0, -1))}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeOrders:
    def __init__(self) -> None:
        self.orders = {"A-1": dict(ANNA)}
        self.appointments = {"P-1": dict(CLEO)}

    def order(self, order_id: str) -> dict[str, Any] | None:
        return self.orders.get(order_id)

    def appointment(self, appt_id: str) -> dict[str, Any] | None:
        return self.appointments.get(appt_id)


class Rig:
    def __init__(self, store: StoreDatabase) -> None:
        self.clock = Clock()
        self.rec = Recorder()
        self.alerts = Alerts(AlertStore(store), self.rec, 60.0, clock=self.clock)
        self.orders = FakeOrders()
        self.watch = AlertWatch(self.alerts, self.orders, device_down_after_s=30,
                                outbox_max_bytes=1000, outbox_alert_percent=80,
                                clock=self.clock)
        self.seq = 0

    def committed(self, event_type: str, data: dict[str, Any]) -> Committed:
        self.seq += 1
        body = json.dumps({"id": f"E{self.seq}", "type": event_type, "data": data})
        return Committed(self.seq, f"E{self.seq}", self.seq, 5, 0.0, body, event_type)

    def see(self, *events: tuple[str, dict[str, Any]]) -> None:
        """Through the commit hook and the alerts task's worker step."""
        self.watch.consume([self.committed(t, d) for t, d in events])
        self.watch.observe(self.watch.take())

    def live(self) -> list[dict[str, Any]]:
        return [dict(a) for a in self.alerts.listing({})["alerts"] if a["state"] != "closed"]


@pytest.fixture
def rig(tmp_path: Path) -> Any:
    store = StoreDatabase.open(tmp_path / "store.db")
    yield Rig(store)
    store.close()


def status(components: dict[str, str] | None = None, outbox_bytes: int = 0,
           **sections: Any) -> Any:
    return {"components": {name: {"state": state, "last_error": "OSError: gone",
                                  "restarts": 1, "since": 0.0}
                           for name, state in (components or {}).items()},
            "outbox": {"bytes": outbox_bytes}, **sections}


def test_a_call_for_staff_raises_an_alert_caused_by_that_event(rig: Rig) -> None:
    rig.see((NFC_TAP, {"tag": {}}), (KIOSK_ASSIST, {"screen": "content"}))
    [alert] = rig.live()
    assert alert["kind"] == "call-staff" and alert["cause"] == "E2"
    assert alert["subject"] == "A shopper at the kiosk asks for help (content screen)"


def test_only_the_events_that_concern_staff_are_queued(rig: Rig) -> None:
    rig.watch.consume([rig.committed(NFC_TAP, {}), rig.committed("o2o.ble.presence", {})])
    assert rig.watch.take() == []


def test_a_pickup_check_in_names_the_shopper_and_the_wait_and_handover_closes_it(
        rig: Rig) -> None:
    rig.see((KIOSK_CHECKIN, {"kind": "pickup", "outcome": "pickup.ok", "order": "A-1"}))
    # the same order checked in again (a second scan) is the same alert
    rig.see((KIOSK_CHECKIN, {"kind": "pickup", "outcome": "pickup.ok", "order": "A-1"}))
    [alert] = rig.live()
    assert alert["subject"] == "Anna is here for order K7Q2M9 (being prepared, about 4 min)"
    assert alert["ref"] == {"order": "A-1", "code": "K7Q2M9"}
    assert "Anna" not in json.dumps(rig.rec.of(STAFF_ALERT))
    rig.see((KIOSK_HANDOVER, {"order": "A-1", "waited_s": 12.0}))
    assert rig.live() == []
    assert rig.alerts.store.get(alert["id"])["closed_by"] == "handover"  # type: ignore[index]


def test_failed_check_ins_raise_nothing(rig: Rig) -> None:
    rig.see((KIOSK_CHECKIN, {"kind": "pickup", "outcome": "not-found"}),
            (KIOSK_CHECKIN, {"kind": "pickup", "outcome": "pickup.ok", "order": "NOPE"}),
            (KIOSK_CHECKIN, {"kind": "loyalty", "outcome": "loyalty.ok"}))
    assert rig.live() == []


def test_an_appointment_arrival(rig: Rig) -> None:
    rig.see((KIOSK_CHECKIN, {"kind": "appointment", "outcome": "appointment.ok",
                             "appointment": "P-1"}))
    [alert] = rig.live()
    assert alert["kind"] == "appointment" and alert["ref"] == {"appointment": "P-1"}
    assert alert["subject"] == "Cleo has arrived for their fitting appointment at 10:30"


def test_an_order_made_ready_while_its_shopper_waits(rig: Rig) -> None:
    rig.watch.orders_ready(["A-1", "GONE"])
    rig.watch.orders_ready(["A-1"])
    [alert] = rig.live()
    assert alert["kind"] == "order-ready"
    assert alert["subject"] == "Order K7Q2M9 is ready: Anna is waiting"


def test_beacon_battery_and_silence_raise_and_settle(rig: Rig) -> None:
    rig.see((BLE_BEACON_HEALTH, {"beacon": "b1", "status": "low-battery", "battery_mv": 2100}),
            (BLE_BEACON_HEALTH, {"beacon": "b2", "status": "silent", "silent_for_s": 900.0}))
    kinds = {a["kind"]: a for a in rig.live()}
    assert set(kinds) == {"beacon-battery", "beacon-silent"}
    assert "2100 mV" in kinds["beacon-battery"]["subject"]
    rig.see((BLE_BEACON_HEALTH, {"beacon": "b2", "status": "heard-again"}),
            (BLE_BEACON_HEALTH, {"beacon": "b1", "status": "ok", "battery_mv": 3000}))
    assert rig.live() == []


def test_an_event_not_understood_is_skipped_not_fatal(rig: Rig) -> None:
    bad = Committed(1, "X", 1, 5, 0.0, "{not json", KIOSK_ASSIST)
    rig.watch.consume([bad, rig.committed(KIOSK_ASSIST, {"screen": "home"})])
    rig.watch.observe(rig.watch.take())
    assert len(rig.live()) == 1


def test_a_component_down_long_enough_raises_one_alert_and_back_up_closes_it(
        rig: Rig) -> None:
    rig.watch.check_health(status({"ble": "restarting"}))
    rig.clock.now += 29
    rig.watch.check_health(status({"ble": "restarting"}))
    assert rig.live() == []  # a restart that comes back soon is not worth a walk
    rig.clock.now += 2
    rig.watch.check_health(status({"ble": "restarting"}))
    rig.watch.check_health(status({"ble": "restarting"}))
    [alert] = rig.live()
    assert alert["kind"] == "device-down" and "OSError: gone" in alert["subject"]
    rig.watch.check_health(status({"ble": "running"}))
    assert rig.live() == []


def test_a_component_failing_between_checks_is_down_though_seen_running(rig: Rig) -> None:
    def seen(restarts: int) -> Any:
        doc = status({"qr": "running"})
        doc["components"]["qr"]["restarts"] = restarts
        return doc

    rig.watch.check_health(seen(1))
    for n in range(2, 6):  # restarted again before every check
        rig.clock.now += 10
        rig.watch.check_health(seen(n))
    [alert] = rig.live()
    assert alert["subject"] == "The component qr is down: OSError: gone"
    rig.clock.now += 10
    rig.watch.check_health(seen(5))  # no restart since: up again
    assert rig.live() == []


def test_a_reader_or_camera_down_is_seen_in_its_driver_state(rig: Rig) -> None:
    down = status(nfc={"reader": {"state": "no-reader", "recent_errors": ["no such device"]}},
                  qr={"camera": {"state": "capturing"}})
    rig.watch.check_health(down)
    rig.clock.now += 31
    rig.watch.check_health(down)
    [alert] = rig.live()
    assert alert["subject"] == "The NFC reader is down: no-reader: no such device"


def test_the_outbox_filling_raises_and_draining_well_below_settles(rig: Rig) -> None:
    rig.watch.check_health(status(outbox_bytes=790))
    assert rig.live() == []
    rig.watch.check_health(status(outbox_bytes=850))
    [alert] = rig.live()
    assert alert["kind"] == "outbox-filling" and "85% full" in alert["subject"]
    rig.watch.check_health(status(outbox_bytes=750))  # within the margin: no flapping
    assert len(rig.live()) == 1
    rig.watch.check_health(status(outbox_bytes=600))
    assert rig.live() == []


def test_the_task_wakes_for_committed_events_from_another_thread(rig: Rig) -> None:
    async def body() -> None:
        task = asyncio.create_task(rig.watch.run(lambda: status(), tick_s=30))
        try:
            deadline = time.monotonic() + 5
            while rig.watch._wake is None:  # the task started
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            await asyncio.to_thread(rig.watch.consume,
                                    [rig.committed(KIOSK_ASSIST, {"screen": "home"})])
            # far sooner than the 30 s tick: the writer's hook woke it
            while not await asyncio.to_thread(rig.live):
                assert time.monotonic() < deadline, "the alerts task did not wake"
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
    asyncio.run(body())
