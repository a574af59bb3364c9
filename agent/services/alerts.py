"""Staff alerts, local first: raised from what the agent sees (agent/services/alerts_watch.py),
kept in the store database, escalated while nobody acknowledges them, acknowledged and closed
over the bus (agent/contracts/alerts.py), and each change recorded as an event — pushed to the
bus's subscribers at once and sent upstream when the uplink can.

Every method may run in any thread (the bus's workers, the store link's, the alerts task's
worker jobs): the state is the table, each change one conditional UPDATE.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

from agent.contracts.alerts import (
    ALERTS_DEFAULT,
    ALERTS_MAX,
    BY_MAX,
    MAX_LEVEL,
    OP_ALERT_ACK,
    OP_ALERT_CLOSE,
    OP_ALERTS,
    SUBJECT_MAX,
    ActionReply,
    Alert,
    AlertKind,
    AlertsReply,
    AlertState,
    valid_by,
)
from agent.contracts.bus import Reply
from agent.contracts.events import (
    STAFF_ALERT,
    STAFF_ALERT_ACKNOWLEDGED,
    STAFF_ALERT_CLOSED,
    STAFF_ALERT_ESCALATED,
    StaffAlert,
    StaffAlertAcknowledged,
    StaffAlertClosed,
    StaffAlertEscalated,
)
from agent.envelope import new_id
from agent.errors import AgentError, Reason
from agent.services.alerts_store import AlertStore

log = logging.getLogger(__name__)

Emit = Callable[[str, Any], object]
# a bus op's handler: the request in, its reply type of the contract out (the server adds req)
Op = Callable[[dict[str, Any]], Reply]

# Live alerts kept at most: past this a new one is not raised (counted, logged) — a kiosk
# pressed in a loop or a flapping reader must not bury the store's list nor its disk.
MAX_LIVE: Final = 500
AGENT_BY: Final = "agent"  # who closes an alert whose cause went away (a beacon heard again)
_ID_MAX: Final = 64


class Alerts:
    def __init__(self, store: AlertStore, emit: Emit, escalate_after_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._emit = emit
        self.escalate_after_s = escalate_after_s
        self._clock = clock
        self.refused_full = 0  # alerts not raised: MAX_LIVE live ones already

    # --- raising -----------------------------------------------------------------------------

    def raise_alert(self, kind: AlertKind, subject: str, ref: dict[str, str],
                    dedupe: str | None = None, cause: str | None = None) -> Alert | None:
        """A new alert (recorded as o2o.staff.alert), or the live one that already stands for
        `dedupe`; None when MAX_LIVE are live."""
        if dedupe is not None:
            live = self.store.live_for(dedupe)
            if live is not None:
                return live
        if self.store.live_count() >= MAX_LIVE:
            self.refused_full += 1
            if self.refused_full & (self.refused_full - 1) == 0:
                log.warning("%d staff alerts are open: a new %s alert is not raised (%d so "
                            "far); close the old ones", MAX_LIVE, kind, self.refused_full)
            return None
        now = self._clock()
        alert: Alert = {
            "id": new_id(), "kind": kind.value, "subject": _one_line(subject, SUBJECT_MAX),
            "ref": ref, "cause": cause, "created": now, "state": AlertState.OPEN.value,
            "level": 0, "escalate_at": now + self.escalate_after_s, "acknowledged_by": None,
            "acknowledged_at": None, "closed_by": None, "closed_at": None}
        kept, new = self.store.add(alert, dedupe)
        if new:
            self.emit(STAFF_ALERT, StaffAlert(alert=kept["id"], kind=kept["kind"],
                                              ref=kept["ref"], cause=cause, level=0))
        return kept

    def close_for(self, dedupe: str, by: str = AGENT_BY) -> Alert | None:
        """Close the live alert of `dedupe` (its cause went away), if there is one."""
        live = self.store.live_for(dedupe)
        if live is None:
            return None
        self.close({"id": live["id"], "by": by})
        return self.store.get(live["id"])

    def emit(self, event_type: str, data: Any) -> None:
        self._emit(event_type, data)

    # --- escalation --------------------------------------------------------------------------

    def tick(self) -> int:
        """Escalate the open alerts whose time came: level + 1 (at most MAX_LEVEL), recorded
        as o2o.staff.alert.escalated. How many escalated."""
        now = self._clock()
        n = 0
        for alert in self.store.due(now):
            level = min(alert["level"] + 1, MAX_LEVEL)
            again = now + self.escalate_after_s if level < MAX_LEVEL else None
            if level == alert["level"]:  # at the top already: only stop asking
                self.store.escalate(alert["id"], level, None)
                continue
            if self.store.escalate(alert["id"], level, again):
                n += 1
                self.emit(STAFF_ALERT_ESCALATED, StaffAlertEscalated(
                    alert=alert["id"], kind=alert["kind"], level=level,
                    waited_s=round(now - alert["created"], 1)))
        return n

    # --- the bus operations -----------------------------------------------------------------

    def ops(self) -> dict[str, Op]:
        return {OP_ALERTS: self.listing, OP_ALERT_ACK: self.acknowledge,
                OP_ALERT_CLOSE: self.close}

    def listing(self, msg: dict[str, Any]) -> AlertsReply:
        limit = msg.get("limit", ALERTS_DEFAULT)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= ALERTS_MAX:
            raise AgentError(Reason.BUS_PROTOCOL,
                             f"limit must be a whole number from 1 to {ALERTS_MAX}, not "
                             f"{str(limit)[:40]!r}")
        alerts, live = self.store.listing(limit)
        return AlertsReply(ok=True, alerts=alerts, open=live, limit=limit)

    def acknowledge(self, msg: dict[str, Any]) -> ActionReply:
        found = self._target(msg)
        if not isinstance(found, tuple):
            return found
        alert, by = found
        if alert["state"] == AlertState.ACKNOWLEDGED and alert["acknowledged_by"] == by:
            return _done("acknowledged", alert)  # a retry: nothing twice
        now = self._clock()
        if self.store.acknowledge_alert(alert["id"], by, now):
            self.emit(STAFF_ALERT_ACKNOWLEDGED, StaffAlertAcknowledged(
                alert=alert["id"], kind=alert["kind"], by=by,
                response_s=round(now - alert["created"], 3)))
            return _done("acknowledged", self.store.get(alert["id"]))
        now_is = self.store.get(alert["id"]) or alert
        if now_is["state"] == AlertState.CLOSED:
            return _no("already-closed", now_is, f"closed by {now_is['closed_by']}")
        if now_is["acknowledged_by"] == by:
            return _done("acknowledged", now_is)
        return _no("already-acknowledged", now_is,
                   f"{now_is['acknowledged_by']} is on the way already")

    def close(self, msg: dict[str, Any]) -> ActionReply:
        found = self._target(msg)
        if not isinstance(found, tuple):
            return found
        alert, by = found
        now = self._clock()
        if self.store.close_alert(alert["id"], by, now):
            acked = alert["acknowledged_at"]
            self.emit(STAFF_ALERT_CLOSED, StaffAlertClosed(
                alert=alert["id"], kind=alert["kind"], by=by,
                response_s=round(now - acked, 3) if acked is not None else None,
                open_s=round(now - alert["created"], 3)))
            return _done("closed", self.store.get(alert["id"]))
        now_is = self.store.get(alert["id"]) or alert
        if now_is["closed_by"] == by:
            return _done("closed", now_is)  # a retry: nothing twice
        return _no("already-closed", now_is, f"closed by {now_is['closed_by']}")

    def _target(self, msg: dict[str, Any]) -> tuple[Alert, str] | ActionReply:
        """(the alert, the staff name) a request names, or the answer that refuses it."""
        alert_id, by = msg.get("id"), valid_by(msg.get("by"))
        if not isinstance(alert_id, str) or not 0 < len(alert_id) <= _ID_MAX:
            return ActionReply(ok=True, outcome="invalid",
                               error='"id" must be the id of an alert (text)')
        if by is None:
            return ActionReply(ok=True, outcome="invalid",
                               error=f'"by" must be the staff member\'s name: 1 to {BY_MAX} '
                                     "printable characters")
        alert = self.store.get(alert_id)
        if alert is None:
            return ActionReply(ok=True, outcome="unknown-alert",
                               error="no such alert here (closed long ago, or of another "
                                     "device)")
        return alert, by


def _done(outcome: str, alert: Alert | None) -> ActionReply:
    """An ack or close done (or done before by the same person), with the alert as it
    stands; None (gone in between, swept): the answer names no alert."""
    reply = ActionReply(ok=True, outcome=outcome)
    if alert is not None:
        reply["alert"] = alert
    return reply


def _no(outcome: str, alert: Alert, error: str) -> ActionReply:
    return ActionReply(ok=True, outcome=outcome, alert=alert, error=error)


def _one_line(text: str, limit: int) -> str:
    """Text for a staff screen: one line, no control characters, at most `limit`."""
    flat = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(flat.split())[:limit]
