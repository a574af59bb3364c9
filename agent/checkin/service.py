"""Answers to the kiosk's check-in requests, and the events that record them.

Requests (from the local bus, op "checkin"):
  {"kind": "pickup", "code": "K7Q2M9"}              typed at the kiosk
  {"kind": "pickup", "order": "A-1042", "via": "qr"} a pickup code the agent already verified
  {"kind": "appointment", "code": "..."}
  {"kind": "loyalty", "card": "LOY0012345678"} or {"kind": "loyalty", "card": "<tag UID>"}
Answer: {"outcome": ..., "name": first name, and what the message needs (minutes, time,
points)}. Outcomes: pickup.ok, pickup.ready, appointment.ok, loyalty.ok, not-found, already,
too-early, other-store, invalid. Each answer is recorded as `o2o.kiosk.checkin` with the
kind, outcome, the order or appointment id and how it came — never the shopper's name.

A pickup or appointment arrival raises a staff alert (agent/services/alerts_watch.py) before
the answer goes: the answer carries its id as "alert", so the kiosk follows that alert (who
acknowledges it) and no other. The alert names the check-in event as its cause: that event's
id is made here, before it is committed.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from agent.checkin.db import QUEUE_DEFAULT, QUEUE_MAX, StoreDb
from agent.contracts.content_variants import session_context
from agent.contracts.events import KIOSK_CHECKIN, KIOSK_HANDOVER, KioskCheckin, KioskHandover
from agent.envelope import new_id
from agent.errors import AgentError, Reason

log = logging.getLogger(__name__)

Emit = Callable[..., object]  # (type, data[, event_id=]): agent/services/capture.py Capture
# (kind "pickup" | "appointment", order or appointment id, the check-in event's id) -> the id
# of the staff alert the arrival raised (None: none, e.g. the alert list is full)
Arrived = Callable[[str, str, str], str | None]
_CODE = re.compile(r"[A-Za-z0-9]{4,10}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
VIAS = ("code", "qr", "nfc")


class CheckinService:
    def __init__(self, db: StoreDb, store: str, emit: Emit, early_min: float = 30.0,
                 clock: Callable[[], float] = time.time,
                 arrived: Arrived | None = None) -> None:
        self.db = db
        self.store = store
        self.emit = emit
        self.early_s = early_min * 60
        self.clock = clock
        self.arrived = arrived

    def checkin(self, req: dict[str, Any]) -> dict[str, Any]:
        kind = req.get("kind")
        asked_via = req.get("via")
        via = asked_via if isinstance(asked_via, str) and asked_via in VIAS else "code"
        if kind == "pickup":
            result, ref = self._pickup(req)
        elif kind == "appointment":
            result, ref = self._appointment(req)
        elif kind == "loyalty":
            result, ref = self._loyalty(req)
        else:
            return {"outcome": "invalid", "error": 'kind must be "pickup", "appointment" or '
                                                  '"loyalty"'}
        event = KioskCheckin(kind=kind, outcome=result["outcome"], via=via)
        event.update(ref)  # the order or appointment id, after the rest (the wire's order)
        # which content and A/B variants the shopper saw in the session that checked in
        seen = session_context(req)
        if "content_version" in seen:
            event["content_version"] = seen["content_version"]
        if "variants" in seen:
            event["variants"] = seen["variants"]
        ref_id = _arrival(result["outcome"], ref)
        if self.arrived is None or not isinstance(ref_id, str):
            self.emit(KIOSK_CHECKIN, event)
            return result
        cause = new_id()
        self.emit(KIOSK_CHECKIN, event, event_id=cause)  # queued first: the cause, then its alert
        try:
            alert = self.arrived(kind, ref_id, cause)
        except (AgentError, sqlite3.Error, OSError) as exc:
            # the shopper is checked in all the same; the alerts task raises the alert from
            # the committed event when it can (the kiosk then promises nothing)
            log.warning("check-in of %s: its staff alert not raised now: %s", ref_id, exc)
            alert = None
        if alert is not None:
            result["alert"] = alert
        return result

    def _code(self, req: dict[str, Any]) -> str | None:
        code = req.get("code")
        if isinstance(code, str) and _CODE.fullmatch(code.strip()):
            return code.strip().upper()
        return None

    def _pickup(self, req: dict[str, Any]) -> tuple[dict[str, Any], KioskCheckin]:
        order_id = req.get("order")
        if isinstance(order_id, str) and _ID.fullmatch(order_id):
            order = self.db.order(order_id)
        else:
            code = self._code(req)
            if code is None:
                return {"outcome": "invalid"}, {}
            order = self.db.order_by_code(code)
        if order is None or order["status"] == "cancelled":
            return {"outcome": "not-found"}, {}
        ref = KioskCheckin(order=order["order_id"])
        name = order["first_name"]
        if order["store"] and order["store"] != self.store:
            return {"outcome": "other-store", "name": name}, ref
        if order["status"] == "collected" or order["handed_over_at"]:
            return {"outcome": "already", "name": name}, ref
        if order["checked_in_at"] is None:
            self.db.mark("orders", order["order_id"], "checked_in_at")
        if order["status"] == "ready":
            return {"outcome": "pickup.ready", "name": name}, ref
        return {"outcome": "pickup.ok", "name": name, "minutes": order["eta_min"]}, ref

    def _appointment(self, req: dict[str, Any]) -> tuple[dict[str, Any], KioskCheckin]:
        code = self._code(req)
        if code is None:
            return {"outcome": "invalid"}, {}
        appt = self.db.appointment_by_code(code)
        if appt is None:
            return {"outcome": "not-found"}, {}
        ref = KioskCheckin(appointment=appt["appt_id"])
        at = time.strftime("%H:%M", time.localtime(appt["at"]))
        if self.clock() < appt["at"] - self.early_s:
            return {"outcome": "too-early", "name": appt["first_name"], "time": at}, ref
        if appt["checked_in_at"] is None:
            self.db.mark("appointments", appt["appt_id"], "checked_in_at")
        return {"outcome": "appointment.ok", "name": appt["first_name"], "time": at}, ref

    def _loyalty(self, req: dict[str, Any]) -> tuple[dict[str, Any], KioskCheckin]:
        card = req.get("card")
        if not isinstance(card, str) or not _ID.fullmatch(card):
            return {"outcome": "invalid"}, {}
        row = self.db.loyalty(card)
        if row is None:
            return {"outcome": "not-found"}, {}
        return {"outcome": "loyalty.ok", "name": row["first_name"], "points": row["points"]}, {}

    def queue(self, req: dict[str, Any]) -> dict[str, Any]:
        """The staff queue (op "queue", {"limit"?: 1-QUEUE_MAX}): the orders waiting longest
        first, at most `limit` (default QUEUE_DEFAULT), and `total` waiting."""
        limit = req.get("limit", QUEUE_DEFAULT)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= QUEUE_MAX:
            raise AgentError(Reason.BUS_PROTOCOL,
                             f"limit must be a whole number from 1 to {QUEUE_MAX}, not "
                             f"{str(limit)[:40]!r}")
        rows, total = self.db.queue(limit)
        return {"queue": rows, "total": total, "limit": limit}

    def handover(self, order_id: str) -> dict[str, Any]:
        order = self.db.order(order_id) if isinstance(order_id, str) else None
        if order is None:
            return {"outcome": "not-found"}
        self.db.mark("orders", order_id, "handed_over_at")
        waited = self.clock() - order["checked_in_at"] if order["checked_in_at"] else None
        self.emit(KIOSK_HANDOVER, KioskHandover(
            order=order_id, waited_s=round(waited, 1) if waited is not None else None))
        return {"outcome": "handed-over"}


def _arrival(outcome: str, ref: KioskCheckin) -> str | None:
    """The order or appointment a shopper arrived for (None: not an arrival)."""
    if outcome in ("pickup.ok", "pickup.ready"):
        return ref.get("order")
    if outcome == "appointment.ok":
        return ref.get("appointment")
    return None
