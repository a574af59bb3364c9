"""The local bus protocol: one JSON object per line over the agent's Unix socket.

Requests carry an `op` and a `req` the answer echoes:
  {"op": "emit", "events": [{"type": T, "data": D, "priority"?: 0-9}]}
      -> {"ok": true, "ids": [...], "seqs": [...], "withheld"?: n}
  {"op": "status"}     -> {"ok": true, "status": {...}} (agent/contracts/status.py)
  {"op": "subscribe"}  -> {"ok": true}, then {"event": {...}} for every committed event
  {"op": "ping"}       -> {"ok": true, "time": t}
  store operations (checkin, queue, handover, kpis, pos) -> {"ok": true, ...their fields}
A refusal is {"ok": false, "reason": R, "error": "what went wrong and what to do"}: R is a
`Reason` value (agent/errors.py), so a client gets back the very reason the agent raised.

This module is the one codec of that format: the server (agent/bus/*) answers with it and
the one client (agent/bus/client.py: a blocking and an asyncio face) reads with it; no I/O
here. The wire format is fixed: existing clients and store integrations speak it.
"""

import enum
import json
from collections.abc import Mapping
from typing import Any, Final, Literal, NotRequired, TypedDict

from agent.contracts.status import Status
from agent.errors import AgentError, Reason

# The longest request line the agent reads; a subscriber's or requester's reader takes
# answer lines of this size too (a status or an event is far smaller).
MAX_LINE: Final = 1024 * 1024


class Op(enum.StrEnum):
    EMIT = "emit"
    STATUS = "status"
    SUBSCRIBE = "subscribe"
    PING = "ping"
    # the store operations the kiosk asks for (registered by the runtime as handlers)
    CHECKIN = "checkin"
    QUEUE = "queue"
    HANDOVER = "handover"
    KPIS = "kpis"
    # a till on the device itself: the POS endpoint's requests over the bus (agent/pos/)
    POS = "pos"
    # a product by GTIN or SKU for the kiosk's product card (agent/contracts/catalog.py)
    CATALOG_LOOKUP = "catalog-lookup"
    # the offer of the one opted-in app at the kiosk (agent/contracts/offers.py)
    PERSONAL_OFFER = "personal-offer"


# the ops every agent answers itself; the rest are handlers it was given
CORE_OPS: Final = (Op.EMIT, Op.STATUS, Op.SUBSCRIBE, Op.PING)


class EventIn(TypedDict):
    """An event a client submits; the agent gives it its id, time and seq."""

    type: str
    data: Any
    priority: NotRequired[int]


class CloudEvent(TypedDict):
    """A committed event as the agent renders it (agent/envelope.py render) and a subscriber
    receives it."""

    specversion: str
    id: str
    source: str
    type: str
    time: str
    datacontenttype: str
    bootid: str
    seq: int
    data: Any


class Reply(TypedDict):
    req: NotRequired[Any]
    ok: Literal[True]


class EmitReply(Reply):
    ids: list[str | None]  # None: withheld (an app user whose consent is withdrawn)
    seqs: list[int | None]
    withheld: NotRequired[int]


class StatusReply(Reply):
    status: Status


class PingReply(Reply):
    time: float


class CheckinReply(Reply):
    """op checkin, {"request": {"kind": pickup|appointment|loyalty, "code"?, "via"?, ...}}"""

    result: dict[str, Any]  # "outcome" and what the kiosk's result screen shows


class QueueReply(Reply):
    """op queue, {"limit"?: 1-QUEUE_MAX}: the orders waiting longest first."""

    queue: list[dict[str, Any]]
    total: int
    limit: int


class HandoverReply(Reply):
    """op handover, {"order": id}."""

    result: dict[str, Any]  # {"outcome": "handed-over" | "not-found"}


class KpisReply(Reply):
    """op kpis, {"day"?: day start}: the day's roll-ups by hour and their summary."""

    day: int
    hourly: dict[str, list[float]]
    summary: dict[str, Any]


class PosReply(Reply):
    """op pos, {"action": sale|refund|offer-check|offer-redeem, "request": {...}, "till"?:
    name}: what the POS endpoint would answer (agent/contracts/pos.py), with its status."""

    status: int
    answer: dict[str, Any]


class ErrorReply(TypedDict):
    req: Any
    ok: Literal[False]
    reason: str  # a Reason value
    error: str


class EventLine(TypedDict):
    event: CloudEvent


_ENCODE: Final = json.JSONEncoder(separators=(",", ":")).encode


def encode(msg: Mapping[str, Any]) -> bytes:
    """One line of the protocol (a request or an answer)."""
    return _ENCODE(msg).encode() + b"\n"


def request(obj: Mapping[str, Any], req: int | None) -> bytes:
    """A request line ({"op": ..., fields}), numbered `req` for its answer."""
    return encode({**obj, "req": req})


def error_reply(req: Any, reason: Reason, message: str) -> ErrorReply:
    return {"req": req, "ok": False, "reason": reason.value, "error": message}


def decode(line: bytes) -> dict[str, Any]:
    """An answer line as an object; AgentError(BUS_PROTOCOL) for anything else."""
    try:
        msg = json.loads(line)
    except ValueError as exc:
        raise AgentError(Reason.BUS_PROTOCOL, f"unexpected reply: {line[:200]!r}") from exc
    if not isinstance(msg, dict):
        raise AgentError(Reason.BUS_PROTOCOL, f"unexpected reply: {line[:200]!r}")
    return msg


def reason_of(value: object) -> Reason:
    """The Reason an answer names; BUS_PROTOCOL for one this client does not know (a newer
    agent's), whose text the error message still carries."""
    try:
        return Reason(value)
    except ValueError:
        return Reason.BUS_PROTOCOL


class BusRefusal(AgentError):
    """The agent answered, and said no: its reason and its words (the connection is fine,
    unless the reason is one that closes it: busy, evicted, lagged)."""


def refusal(reply: Mapping[str, Any]) -> BusRefusal:
    """The error a refusal stands for, with the agent's own reason and words."""
    return BusRefusal(reason_of(reply.get("reason")),
                      str(reply.get("error") or "the agent refused the request"))


def checked(reply: dict[str, Any]) -> dict[str, Any]:
    """An answer that is not a refusal; the refusal raised as BusRefusal."""
    if reply.get("ok") is not True:
        raise refusal(reply)
    return reply


def stream_item(msg: dict[str, Any]) -> CloudEvent | None:
    """A subscription's next event; None for a line that is not one (skipped); the agent's
    parting refusal (lagged, evicted) raised as AgentError."""
    event = msg.get("event")
    if isinstance(event, dict):
        return event  # type: ignore[return-value]  # the agent rendered it (CloudEvent)
    if msg.get("ok") is False:
        raise refusal(msg)
    return None
