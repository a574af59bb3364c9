"""What raises and settles staff alerts: the committed events the agent sees (a shopper
calling staff, a pickup or appointment check-in, a handover, a beacon's health), an order
turning ready while its shopper waits (the store link's increments), and the agent's own
health (a component or driver down, the outbox filling), read from the status document.

A shopper's call that reaches the agent late — pressed while the agent was down, kept by the
kiosk and sent when it came back — raises no alert: the kiosk told that shopper "please ask
at the counter", so staff sent to the kiosk minutes later would find nobody, and the phones
would ring for a call already handled at the counter. The call is still recorded upstream
with its real time (the event's `kiosk_time`): demand the store could not answer. It is late
when the kiosk says it sent the shopper to the counter (`counter`), or when its kiosk time is
more than LATE_CALL_S before the agent commits it. Counted (`late_calls`) and logged.

A pickup or appointment check-in raises its alert at once, in the check-in's answer
(`arrived`, agent/checkin/service.py), so the kiosk gets the alert's id; the committed
check-in event then finds that alert standing (the same dedupe key) and raises nothing more.

The committed events arrive on the outbox writer's thread: there they are only picked out
(a set lookup per event) and queued; the alerts task reads them, and the store database, in
a worker job, so neither the writer's group commit nor the event loop waits on an alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Final, Protocol

from agent.contracts.alerts import Alert, AlertKind
from agent.contracts.events import BLE_BEACON_HEALTH, KIOSK_ASSIST, KIOSK_CHECKIN, KIOSK_HANDOVER
from agent.contracts.status import Status
from agent.outbox import Committed
from agent.services.alerts import Alerts

log = logging.getLogger(__name__)

WATCHED: Final = frozenset({KIOSK_ASSIST, KIOSK_CHECKIN, KIOSK_HANDOVER, BLE_BEACON_HEALTH})
TICK_S: Final = 1.0  # escalation is due to the second: staff hear a late alert, not a lost one
HEALTH_EVERY_S: Final = 5.0  # the status document is built this often for the health checks
QUEUE_MAX: Final = 10_000  # events waiting for the alerts task; past it the oldest go (logged)
HANDOVER_BY: Final = "handover"  # who closes a pickup's alerts when the order is handed over
# a driver state that means "not working" (drivers/*: the BLE scanner, NFC reader, camera)
DRIVER_DOWN: Final = {
    ("ble", "scanner"): ("BLE scanner", {"retrying"}),
    ("nfc", "reader"): ("NFC reader", {"no-reader", "lost", "error"}),
    ("qr", "camera"): ("camera", {"missing", "lost", "not-a-camera"}),
}
OUTBOX_CLEAR_MARGIN: Final = 10.0  # percent below the alert level that settles it (no flapping)
# A call committed this long after the kiosk's press is one the kiosk kept while the agent
# was away (a live call is committed within a group commit, ~50 ms): long enough for a slow
# Pi under load, short enough that the shopper is surely still told "ask at the counter".
LATE_CALL_S: Final = 20.0


class Orders(Protocol):
    """agent/checkin/db.py StoreDb."""

    def order(self, order_id: str) -> dict[str, Any] | None: ...

    def appointment(self, appt_id: str) -> dict[str, Any] | None: ...


class AlertWatch:
    def __init__(self, alerts: Alerts, orders: Orders, device_down_after_s: float,
                 outbox_max_bytes: int, outbox_alert_percent: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.alerts = alerts
        self._orders = orders
        self._down_after = device_down_after_s
        self._outbox_max = outbox_max_bytes
        self._outbox_pct = outbox_alert_percent
        self._clock = clock
        self._down_since: dict[str, float] = {}
        self._restarts: dict[str, int] = {}  # each component's restarts at the last check
        self.late_calls = 0  # calls too late for an alert (the shopper went to the counter)
        self._queue: deque[tuple[str, str, str]] = deque(maxlen=QUEUE_MAX)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    # --- on the writer's thread -------------------------------------------------------------

    def consume(self, committed: list[Committed]) -> None:
        """A commit group: the events that concern staff queued for the alerts task."""
        picked = [(c.type, c.id, c.body) for c in committed if c.type in WATCHED]
        if not picked:
            return
        with self._lock:
            self._queue.extend(picked)
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the agent is stopping
                loop.call_soon_threadsafe(wake.set)

    # --- the alerts task --------------------------------------------------------------------

    async def run(self, status: Callable[[], Status], tick_s: float = TICK_S) -> None:
        """Observe queued events as they come, escalate every `tick_s`, check health every
        HEALTH_EVERY_S. What touches SQLite runs in this task's one worker thread, made at
        once: the work is serial, and the agent's thread count does not grow when a tick
        meets another component's worker job in the shared pool."""
        loop = self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="staff-alerts")
        next_health = time.monotonic()
        try:
            while True:
                items = self.take()
                if items:
                    await loop.run_in_executor(pool, self.observe, items)
                await loop.run_in_executor(pool, self.alerts.tick)
                if time.monotonic() >= next_health:
                    next_health = time.monotonic() + HEALTH_EVERY_S
                    doc = status()  # built on the loop, like the bus's status answer
                    await loop.run_in_executor(pool, self.check_health, doc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), tick_s)
                self._wake.clear()
        finally:
            pool.shutdown(wait=False)

    def take(self) -> list[tuple[str, str, str]]:
        with self._lock:
            items = list(self._queue)
            self._queue.clear()
        return items

    # --- in a worker job --------------------------------------------------------------------

    def observe(self, items: list[tuple[str, str, str]]) -> None:
        """(type, event id, committed body) of events that concern staff."""
        for event_type, event_id, body in items:
            try:
                doc = json.loads(body)
                data = doc.get("data")
                if isinstance(data, dict):
                    if event_type == KIOSK_ASSIST and self._late(event_id, doc, data):
                        continue
                    self._one(event_type, event_id, data)
            except (ValueError, AttributeError, TypeError, KeyError) as exc:
                log.warning("staff alerts: %s event %s not understood: %s", event_type,
                            event_id, exc)

    def _one(self, event_type: str, event_id: str, data: dict[str, Any]) -> None:
        if event_type == KIOSK_ASSIST:
            screen = str(data.get("screen") or "")[:40]
            self.alerts.raise_alert(
                AlertKind.CALL_STAFF, "A shopper at the kiosk asks for help"
                + (f" ({screen} screen)" if screen else ""),
                {"screen": screen} if screen else {}, cause=event_id)
        elif event_type == KIOSK_CHECKIN:
            outcome = data.get("outcome")
            if outcome in ("pickup.ok", "pickup.ready") and isinstance(data.get("order"), str):
                self._pickup(data["order"], event_id)
            elif outcome == "appointment.ok" and isinstance(data.get("appointment"), str):
                self._appointment(data["appointment"], event_id)
        elif event_type == KIOSK_HANDOVER and isinstance(data.get("order"), str):
            for key in ("pickup:", "ready:"):
                self.alerts.close_for(key + data["order"], HANDOVER_BY)
        elif event_type == BLE_BEACON_HEALTH and isinstance(data.get("beacon"), str):
            self._beacon(data["beacon"][:64], data)

    def _late(self, event_id: str, doc: dict[str, Any], data: dict[str, Any]) -> bool:
        """Whether a call came too late for an alert (counted and logged when it did)."""
        pressed = data.get("kiosk_time")
        committed = _unix(doc.get("time"))
        waited = committed - pressed if isinstance(pressed, int | float) and \
            not isinstance(pressed, bool) and committed is not None else None
        if data.get("counter") is not True and (waited is None or waited <= LATE_CALL_S):
            return False
        self.late_calls += 1
        log.info("staff alerts: call %s not raised: it reached the agent %s after the "
                 "press, and the shopper was sent to the counter", event_id,
                 f"{waited:.0f} s" if waited is not None else "late")
        return True

    def arrived(self, kind: str, ref_id: str, cause: str) -> str | None:
        """A pickup or appointment check-in's alert, raised now (in the check-in's answer):
        its id, or None when none was raised."""
        alert = self._pickup(ref_id, cause) if kind == "pickup" else \
            self._appointment(ref_id, cause) if kind == "appointment" else None
        return alert["id"] if alert is not None else None

    def _pickup(self, order_id: str, cause: str) -> Alert | None:
        order = self._orders.order(order_id)
        if order is None:
            return None
        who = order["first_name"] or "A shopper"
        code = order["code"] or order_id
        state = "ready" if order["status"] == "ready" else \
            f"being prepared, about {order['eta_min']} min"
        return self.alerts.raise_alert(
            AlertKind.PICKUP, f"{who} is here for order {code} ({state})", _order_ref(order),
            dedupe=f"pickup:{order_id}", cause=cause)

    def orders_ready(self, order_ids: list[str]) -> None:
        """Orders that turned ready while their shoppers are checked in (the store link)."""
        for order_id in order_ids:
            order = self._orders.order(order_id)
            if order is None:
                continue
            who = order["first_name"] or "the shopper"
            self.alerts.raise_alert(
                AlertKind.ORDER_READY,
                f"Order {order['code'] or order_id} is ready: {who} is waiting",
                _order_ref(order), dedupe=f"ready:{order_id}")

    def _appointment(self, appt_id: str, cause: str) -> Alert | None:
        appt = self._orders.appointment(appt_id)
        if appt is None:
            return None
        at = time.strftime("%H:%M", time.localtime(appt["at"]))
        what = f"{appt['service']} appointment" if appt["service"] else "appointment"
        return self.alerts.raise_alert(
            AlertKind.APPOINTMENT,
            f"{appt['first_name'] or 'A shopper'} has arrived for their {what} at {at}",
            {"appointment": appt_id}, dedupe=f"appointment:{appt_id}", cause=cause)

    def _beacon(self, beacon: str, data: dict[str, Any]) -> None:
        status = data.get("status")
        if status == "low-battery":
            mv = data.get("battery_mv")
            self.alerts.raise_alert(
                AlertKind.BEACON_BATTERY,
                f"Beacon {beacon}: battery low" + (f" ({mv} mV)" if isinstance(mv, int) else "")
                + " - replace it", {"beacon": beacon}, dedupe=f"battery:{beacon}")
        elif status == "ok":  # a reading above the limit: the battery was replaced
            self.alerts.close_for(f"battery:{beacon}")
        elif status == "silent":
            self.alerts.raise_alert(
                AlertKind.BEACON_SILENT, f"Beacon {beacon} is not heard any more: check it is "
                "in place and has power", {"beacon": beacon}, dedupe=f"silent:{beacon}")
        elif status == "heard-again":
            self.alerts.close_for(f"silent:{beacon}")

    def check_health(self, status: Status) -> None:
        """A component or driver down for device_down_after_s raises an alert, back up
        closes it; the outbox past the alert level raises one, well below it closes it."""
        now = self._clock()
        down: dict[str, str] = {}
        for name, health in status["components"].items():
            # restarted since the last check counts too: a component that fails at once
            # after each quick restart is seldom seen in the "restarting" state itself
            before = self._restarts.get(name, health["restarts"])
            self._restarts[name] = health["restarts"]
            if health["state"] == "restarting" or health["restarts"] > before:
                down[f"component {name}"] = health["last_error"]
        sections: dict[str, Any] = dict(status)
        for (section, part), (label, states) in DRIVER_DOWN.items():
            driver = (sections.get(section) or {}).get(part) or {}
            if driver.get("state") in states:
                errors = driver.get("recent_errors") or [driver.get("last_error") or ""]
                down[label] = f"{driver['state']}: {errors[-1]}" if errors[-1] else \
                    str(driver["state"])
        for name in list(self._down_since):
            if name not in down:
                del self._down_since[name]
                self.alerts.close_for(f"down:{name}")
        for name, why in down.items():
            since = self._down_since.setdefault(name, now)
            if now - since >= self._down_after:
                self.alerts.raise_alert(AlertKind.DEVICE_DOWN, f"The {name} is down: {why}",
                                        {"component": name}, dedupe=f"down:{name}")
        self._outbox(status)

    def _outbox(self, status: Status) -> None:
        used = status["outbox"].get("bytes")
        if not isinstance(used, int) or self._outbox_max <= 0:
            return
        pct = 100.0 * used / self._outbox_max
        if pct >= self._outbox_pct:
            self.alerts.raise_alert(
                AlertKind.OUTBOX_FILLING,
                f"The event buffer is {pct:.0f}% full: the connection upstream has been down "
                "a long time; check the store's internet", {"component": "outbox"},
                dedupe="outbox")
        elif pct < self._outbox_pct - OUTBOX_CLEAR_MARGIN:
            self.alerts.close_for("outbox")


def _order_ref(order: dict[str, Any]) -> dict[str, str]:
    ref = {"order": str(order["order_id"])}
    if order["code"]:
        ref["code"] = str(order["code"])
    return ref


def _unix(text: Any) -> float | None:
    """An event's RFC 3339 `time` as Unix seconds (None: not one)."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
