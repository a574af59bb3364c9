"""What a shopper is told after calling staff, or checking in for a pickup: honest at every
step. "We have let the team know" once the agent has the call; "<name> from our team is
coming" only once someone acknowledged the alert it raised (the o2o.staff.alert.acknowledged
event on the bus stream carries who); "please ask at the counter" when the agent cannot take
the call at all.

The kiosk finds the alert its own call raised by `cause`: the id the agent gave the
o2o.kiosk.assist event (the emit's answer), as agent/contracts/alerts.py says. A pickup
check-in's alert names the order in `ref`; the check-in's answer does not (yet) give the
order id, so the first pickup alert raised within WINDOW_S of the check-in is taken as this
kiosk's — one kiosk per agent, and a shopper at the kiosk when it comes."""

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

WINDOW_S: Final = 15.0  # a check-in and the pickup alert it raises: well under a second apart
RECENT: Final = 20  # alerts raised lately, kept for an answer that comes after its event


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
        self._raised: deque[tuple[float, str, str, str | None]] = deque(maxlen=RECENT)

    def called(self, kind: str, cause: str | None = None, alert: str | None = None) -> None:
        """The shopper called (cause: the assist event's id) or checked in; earlier alerts
        raised for this cause are matched at once."""
        self.waiting = Waiting(kind, self.clock(), cause, alert)
        for at, alert_id, raised_kind, raised_cause in self._raised:
            if self._matches(at, raised_kind, raised_cause):
                self.waiting.alert = alert_id

    def forget(self) -> None:
        """A new session: the next shopper hears nothing of the last one's call."""
        self.waiting = None

    def _matches(self, at: float, kind: str, cause: str | None) -> bool:
        w = self.waiting
        if w is None or w.alert is not None or kind != w.kind:
            return False
        if w.cause is not None:
            return cause == w.cause
        return w.kind == AlertKind.PICKUP and -1.0 <= at - w.since <= WINDOW_S

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
            self._raised.append((self.clock(), alert, raised_kind, cause))
            if self._matches(self.clock(), raised_kind, cause):
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
    await link.emit(ev.KIOSK_ASSIST, data)
    return False, None
