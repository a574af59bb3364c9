"""What a shopper is told after calling staff, or checking in for a pickup: honest at every
step. "We have let the team know" once the agent has the call; "<name> from our team is
coming" only once someone acknowledged the alert it raised (the o2o.staff.alert.acknowledged
event on the bus stream carries who); "please ask at the counter" when the agent cannot take
the call at all.

The kiosk finds the alert its own call raised by `cause`: the id the agent gave the
o2o.kiosk.assist event (the emit's answer), as agent/contracts/alerts.py says. A pickup or
appointment check-in's answer names its alert (`alert`), so the kiosk follows that one and
no other, however many kiosks and check-ins share the agent.

What the shopper was told is kept as words to say (`Said`: a catalogue key and its values),
not as text, so a language switch says it again in the new language.

A call pressed while the agent is away is sent later marked `counter`: the shopper was sent
to the counter, so the agent records the call without raising an alert for it."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from agent.contracts import events as ev
from agent.contracts.alerts import AlertKind
from agent.contracts.bus import CloudEvent, Op
from kiosk.errors import KioskError
from kiosk.link import AgentLink
from kiosk.safe_text import NAME_MAX, plain

RECENT: Final = 20  # alerts raised lately, kept for an answer that comes after its event
# a check-in outcome after which the shopper waits for staff, and the alert kind it raises
ARRIVALS: Final = {"pickup.ok": AlertKind.PICKUP, "pickup.ready": AlertKind.PICKUP,
                   "appointment.ok": AlertKind.APPOINTMENT}


@dataclass(frozen=True)
class Said:
    """Words the shopper was given about their call: a catalogue key and its values."""

    key: str
    values: tuple[tuple[str, str], ...] = ()

    def text(self, translate: Callable[..., str]) -> str:
        return translate(self.key, **dict(self.values))


@dataclass
class Waiting:
    kind: str  # an AlertKind value
    since: float
    cause: str | None = None  # the event id that raises it (a call), when known
    alert: str | None = None  # the alert's id, once known


class AlertFollow:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.waiting: Waiting | None = None
        self._raised: deque[tuple[str, str, str | None]] = deque(maxlen=RECENT)

    def called(self, kind: str, cause: str | None = None, alert: str | None = None) -> None:
        """The shopper called (cause: the assist event's id) or checked in (alert: the id
        the check-in's answer gave); earlier alerts raised for this cause are matched at
        once."""
        self.waiting = Waiting(kind, self.clock(), cause, alert)
        for alert_id, raised_kind, raised_cause in self._raised:
            if self._matches(raised_kind, raised_cause):
                self.waiting.alert = alert_id

    def forget(self) -> None:
        """A new session: the next shopper hears nothing of the last one's call."""
        self.waiting = None

    def _matches(self, kind: str, cause: str | None) -> bool:
        w = self.waiting
        if w is None or w.alert is not None or kind != w.kind:
            return False
        return w.cause is not None and cause == w.cause

    def on_event(self, event: CloudEvent) -> str | None:
        """The staff member coming (their name, cleaned) when this event acknowledges the
        alert the shopper waits on; None otherwise."""
        kind = event.get("type")
        data = event.get("data")
        if not isinstance(data, dict):
            return None
        alert = data.get("alert")
        if not isinstance(alert, str):
            return None
        if kind == ev.STAFF_ALERT:
            cause = data.get("cause") if isinstance(data.get("cause"), str) else None
            raised_kind = str(data.get("kind"))
            self._raised.append((alert, raised_kind, cause))
            if self._matches(raised_kind, cause):
                assert self.waiting is not None
                self.waiting.alert = alert
            return None
        w = self.waiting
        if kind == ev.STAFF_ALERT_ACKNOWLEDGED and w is not None and w.alert == alert:
            by = plain(_text(data.get("by")), NAME_MAX)
            return by or None
        return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


async def send_call(link: AgentLink, data: ev.KioskAssist, agent_up: bool) -> \
        tuple[bool, str | None]:
    """The shopper's call for staff sent at once, not queued, for the id the agent gives it
    (its alert's `cause`): (True, id) when the agent took it; (False, None) when it could not
    — the call is then kept for the agent's return like any kiosk event."""
    if agent_up:
        stamped = {**data, "kiosk_time": round(time.time(), 3)}
        try:
            reply = await link.request(
                {"op": Op.EMIT, "events": [{"type": ev.KIOSK_ASSIST, "data": stamped}]})
        except KioskError:
            pass
        else:
            ids = reply.get("ids")
            cause = ids[0] if isinstance(ids, list) and ids else None
            return True, cause if isinstance(cause, str) else None
    # kept for the record: the shopper is sent to the counter, so no alert comes of it
    await link.emit(ev.KIOSK_ASSIST, ev.KioskAssist(screen=data["screen"], counter=True))
    return False, None
