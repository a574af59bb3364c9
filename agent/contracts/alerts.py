"""Staff alerts: what the agent raises for the store's staff, and the bus operations that list,
acknowledge and close them (the staff view and the kiosk speak this; agent/services/alerts.py
answers).

An alert is raised from what the agent sees — a shopper calling staff at the kiosk
(`o2o.kiosk.assist`), a pickup check-in, an appointment arrival, an order turning ready while
its shopper waits, a beacon's low battery or silence, a reader or camera down, the outbox
filling — and lives in the store database, so the store hears it with the internet down:

    open --ack(by)--> acknowledged --close(by)--> closed
    open --close(by)--> closed                     (handled without an "on my way")

An open alert escalates while nobody acknowledges it: every `[staff] escalate_after_s` its
`level` goes up by one (0 when raised, at most MAX_LEVEL), said in the alert and as an
`o2o.staff.alert.escalated` event: a staff view rings louder, and for everyone.

Each change is an event (agent/contracts/events.py: o2o.staff.alert, …acknowledged, …closed,
…escalated) pushed to bus subscribers and sent upstream. The events carry the alert's id, kind
and `ref` (order id, appointment id, beacon, component) but never `subject`: the subject may
name the shopper by first name, which stays in the store; a staff view that sees an event asks
`alerts` for the text. A kiosk finds the alert its own call raised by `cause`, the id the agent
gave the `o2o.kiosk.assist` event (the emit's answer).

Bus operations (agent/contracts/bus.py format; answers are {"ok": true, ...these fields}):
  {"op": "alerts", "limit"?: 1-ALERTS_MAX}
      -> AlertsReply: the open and acknowledged alerts (oldest first), then the most recently
         closed ones, at most `limit` (default ALERTS_DEFAULT) in all
  {"op": "alert-ack", "id": alert id, "by": staff name}    -> ActionReply
  {"op": "alert-close", "id": alert id, "by": staff name}  -> ActionReply
Who may use them: staff tools only. Every one of these requests carries the staff bus token
("token": the secret the staff view's settings hold as `bus_token`); the agent keeps only
its digest (`[staff] bus_tokens`, "sha256$" + hex) and refuses a request without a token, or
with one whose digest it does not hold, with reason "forbidden" — answered and counted
(status: bus.refused_requests "<op>:staff-only", "<op>:wrong-token"). With no digest
configured nobody may. The kiosk holds no token: the alert list names shoppers, and a shopper
at a public screen must not be able to acknowledge their own call. A token, not the peer's
user id, because the staff view and the kiosk run as the same user on a store device, and a
capability that can be revoked (remove its digest) serves a second staff tool too.

An ack or close that cannot be done is answered, not refused: its `outcome` says why
(unknown-alert, already-acknowledged by someone else, already-closed, invalid), with `error`
in words, and the alert as it stands when there is one. Acknowledging twice by the same person,
or closing twice by the same person, is answered "acknowledged"/"closed" again (a retried
request after a lost answer does nothing twice). A request that is not an object, or a
`limit` out of range, is refused (reason bus-protocol) like any malformed bus request.
"""

from __future__ import annotations

import enum
import hashlib
import re
from typing import Final, Literal, NotRequired, TypedDict

from agent.contracts.bus import Reply

# --- the operations ------------------------------------------------------------------------

OP_ALERTS: Final = "alerts"
OP_ALERT_ACK: Final = "alert-ack"
OP_ALERT_CLOSE: Final = "alert-close"
ALERT_OPS: Final = (OP_ALERTS, OP_ALERT_ACK, OP_ALERT_CLOSE)
STAFF_OPS: Final = frozenset(ALERT_OPS)  # the ops that need the staff bus token
TOKEN_FIELD: Final = "token"  # noqa: S105  # a field name: where a staff op carries it
TOKEN_MIN, TOKEN_MAX = 16, 256  # characters of a token (`staff-view bus-token` makes 43)
DIGEST_PATTERN: Final = re.compile(r"sha256\$[0-9a-f]{64}")  # a [staff] bus_tokens entry

ALERTS_DEFAULT: Final = 50  # a phone's screen of alerts and then some
ALERTS_MAX: Final = 200  # an answer stays far below the bus's line cap (~1 KiB an alert)
MAX_LEVEL: Final = 3  # escalation stops here: louder than "everyone, now" does not help
BY_MAX: Final = 40  # characters of a staff member's name or badge as given in `by`
SUBJECT_MAX: Final = 160  # characters of an alert's text: one line on a phone
# a staff name: printable, no control or bidi-override characters, not only spaces
BY_PATTERN: Final = re.compile(rf"[^\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]{{1,{BY_MAX}}}")


class AlertKind(enum.StrEnum):
    CALL_STAFF = "call-staff"  # a shopper pressed "call staff" at the kiosk
    PICKUP = "pickup"  # a pickup check-in: the order is waiting to be handed over
    ORDER_READY = "order-ready"  # an order turned ready while its shopper is checked in
    APPOINTMENT = "appointment"  # an appointment's shopper arrived
    BEACON_BATTERY = "beacon-battery"  # a store beacon's battery is low
    BEACON_SILENT = "beacon-silent"  # a store beacon is not heard any more
    DEVICE_DOWN = "device-down"  # a reader, the camera or another component is down
    OUTBOX_FILLING = "outbox-filling"  # the event buffer nears its quota (uplink down?)


class AlertState(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"


class Alert(TypedDict):
    """One alert as the `alerts` operation lists it. Times are Unix seconds."""

    id: str  # a ULID: sorts by creation
    kind: str  # an AlertKind value (a newer agent's unknown kind: show its subject)
    subject: str  # staff-safe text: first name and order code at most, never more
    ref: dict[str, str]  # what it is about: order, appointment, beacon, component, screen
    cause: str | None  # the id of the event that raised it (a kiosk matches its call)
    created: float
    state: str  # an AlertState value
    level: int  # 0 when raised, +1 at each escalation, at most MAX_LEVEL
    escalate_at: float | None  # when it escalates next if nobody acknowledges; None: no more
    acknowledged_by: str | None
    acknowledged_at: float | None
    closed_by: str | None
    closed_at: float | None


AckOutcome = Literal["acknowledged", "unknown-alert", "already-acknowledged", "already-closed",
                     "invalid"]
CloseOutcome = Literal["closed", "unknown-alert", "already-closed", "invalid"]


class AlertsReply(Reply):
    """op alerts."""

    alerts: list[Alert]
    open: int  # open and acknowledged alerts in all (the list may show fewer: `limit`)
    limit: int


class ActionReply(Reply):
    """op alert-ack or alert-close."""

    outcome: str  # an AckOutcome or a CloseOutcome
    alert: NotRequired[Alert]  # as it stands after the request (absent: unknown or invalid)
    error: NotRequired[str]  # for anything but "acknowledged"/"closed": what went wrong


def valid_by(by: object) -> str | None:
    """A staff name as given in `by`, trimmed; None for one that is not acceptable."""
    if not isinstance(by, str):
        return None
    name = by.strip()
    return name if name and BY_PATTERN.fullmatch(name) else None


def token_digest(token: str) -> str:
    """What `[staff] bus_tokens` keeps of a staff bus token (the token itself stays with
    the staff tool): a 256-bit random token needs no slow hash."""
    return "sha256$" + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
