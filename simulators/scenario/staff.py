"""The store's staff in a scenario: whoever holds the staff view, played as a bus client (the
`alerts` and `alert-ack` operations the staff view uses, with the staff bus token the stage
gave the agent). A shopper's call at the kiosk, or an appointment's shopper checking in there,
raises an alert; the staff member the scenario names acknowledges it after the scenario's
delay, and the kiosk's words change; an alert nobody answers is left open, and before the day
is judged the desk waits (bounded) until the agent has escalated it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.bus.client import BusClient
from agent.contracts.alerts import OP_ALERT_ACK, OP_ALERTS, TOKEN_FIELD, Alert, AlertKind
from agent.errors import AgentError
from simulators.scenario.model import ESCALATE_AFTER_S, Appointment, Call

RAISED_WITHIN_S = 10.0  # a call's alert is listed well inside this (local, no uplink)


class StaffDesk:
    def __init__(self, socket: Path, say: Callable[[float, str], None], token: str) -> None:
        self.socket = socket
        self.token = token
        self.say = say
        self.seen: set[str] = set()  # call alerts already matched to a call
        self.unanswered: list[str] = []  # alert ids of calls nobody answers

    def _alerts(self) -> list[Alert]:
        with BusClient(self.socket, timeout=10) as bus:
            listed: list[Alert] = bus.request({"op": OP_ALERTS, TOKEN_FIELD: self.token})[
                "alerts"]
        return listed

    @staticmethod
    def _raised_for(alert: Alert, item: Call) -> bool:
        if isinstance(item, Appointment):
            return alert["kind"] == AlertKind.APPOINTMENT and \
                alert["ref"].get("appointment") == item.id
        return alert["kind"] == AlertKind.CALL_STAFF

    async def _new_alert(self, item: Call) -> str | None:
        """The id of the alert the shopper's press or check-in just raised (None: none
        listed)."""
        deadline = time.monotonic() + RAISED_WITHIN_S
        while time.monotonic() < deadline:
            for alert in await asyncio.to_thread(self._alerts):
                if self._raised_for(alert, item) and alert["id"] not in self.seen:
                    self.seen.add(alert["id"])
                    return alert["id"]
            await asyncio.sleep(0.1)
        return None

    async def answer(self, call: Call, t: float, at_wall: Callable[[float], float],
                     kiosk_says: Callable[[], str]) -> None:
        """Follow one call, or an appointment's arrival, from the press or check-in to the
        acknowledgement (or to nobody)."""
        appt = call if isinstance(call, Appointment) else None
        what = f"{appt.first_name or 'a shopper'}'s appointment" if appt else "the call"
        alert_id = await self._new_alert(call)
        if alert_id is None:
            self.say(t, f"{what}: no alert raised within {RAISED_WITHIN_S:.0f} s")
            return
        if not call.staff:
            self.unanswered.append(alert_id)
            self.say(t, f"nobody answers {what}" if appt else
                        "a shopper calls staff at the kiosk; nobody answers")
            return
        delay = at_wall(t + call.answer_after_s) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        answer = await asyncio.to_thread(self._ack, alert_id, call.staff)
        heard = await self._kiosk_hears(call.staff, kiosk_says)
        self.say(t + call.answer_after_s,
                 f"{call.staff} from our team answers {what} after "
                 f"{call.answer_after_s:.0f} s" + ("" if answer == "acknowledged" else
                                                   f" ({answer})")
                 + ("" if heard else "; the kiosk did not say so"))

    def _ack(self, alert_id: str, by: str) -> str:
        with BusClient(self.socket, timeout=10) as bus:
            return str(bus.request({"op": OP_ALERT_ACK, "id": alert_id, "by": by,
                                    TOKEN_FIELD: self.token})["outcome"])

    @staticmethod
    async def _kiosk_hears(name: str, kiosk_says: Callable[[], str]) -> bool:
        deadline = time.monotonic() + RAISED_WITHIN_S
        while time.monotonic() < deadline:
            if name in kiosk_says():
                return True
            await asyncio.sleep(0.05)
        return False

    async def until_escalated(self, now: Callable[[], float]) -> None:
        """Wait until every call nobody answered has escalated at least once (bounded: the
        agent escalates after ESCALATE_AFTER_S; what it missed shows in the check)."""
        if not self.unanswered:
            return
        deadline = time.monotonic() + ESCALATE_AFTER_S + RAISED_WITHIN_S
        while time.monotonic() < deadline:
            levels = {a["id"]: a["level"] for a in await asyncio.to_thread(self._levels)}
            if all(levels.get(i, 0) >= 1 for i in self.unanswered):
                self.say(now(), f"{len(self.unanswered)} unanswered call(s) escalated")
                return
            await asyncio.sleep(0.2)
        self.say(now(), "unanswered calls not escalated within "
                        f"{ESCALATE_AFTER_S + RAISED_WITHIN_S:.0f} s")

    def _levels(self) -> list[dict[str, Any]]:
        try:
            return [{"id": a["id"], "level": a["level"]} for a in self._alerts()]
        except (AgentError, OSError):
            return []
