"""CloudEvents 1.0 envelope (structured JSON mode) with the `bootid` and `seq` extensions.

An event gets its `id` (ULID) and `time` when it is captured and its `seq` when it is committed,
so that `seq` counts committed events of one boot without gaps: the upstream can tell a lost
event (a hole in `seq`) from a duplicate (the same `id` twice).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ulid import ULID

from agent.errors import AgentError, Reason

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
MAX_DATA_BYTES = 64 * 1024
_TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*){1,7}$")

# Priorities: higher leaves the outbox first and is dropped last.
PRIORITY_CRITICAL = 9
PRIORITY_HIGH = 7
PRIORITY_NORMAL = 5
PRIORITY_LOW = 2

_PRIORITY_BY_PREFIX: tuple[tuple[str, int], ...] = (
    ("o2o.agent.", PRIORITY_CRITICAL),
    ("o2o.kiosk.checkin", PRIORITY_CRITICAL),
    ("o2o.kiosk.assist", PRIORITY_CRITICAL),
    ("o2o.kiosk.", PRIORITY_HIGH),
    ("o2o.nfc.", PRIORITY_HIGH),
    ("o2o.qr.", PRIORITY_HIGH),
    ("o2o.ble.presence", PRIORITY_NORMAL),
    ("o2o.ble.tlm", PRIORITY_LOW),
    ("o2o.telemetry", PRIORITY_LOW),
    ("o2o.ble.", PRIORITY_LOW),
)


def default_priority(event_type: str) -> int:
    for prefix, prio in _PRIORITY_BY_PREFIX:
        if event_type.startswith(prefix):
            return prio
    return PRIORITY_NORMAL


def rfc3339_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    return str(ULID())


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """A validated event waiting for its commit; `data_json` is already serialised."""

    id: str
    type: str
    created: float
    data_json: str
    priority: int


def make_pending(
    event_type: str,
    data: Any,
    created: float,
    priority: int | None = None,
    event_id: str | None = None,
) -> PendingEvent:
    """Validate an event from any producer; raises AgentError(INVALID_EVENT) saying why."""
    if not isinstance(event_type, str) or not _TYPE_RE.match(event_type):
        raise AgentError(
            Reason.INVALID_EVENT,
            f"event type {event_type!r} is not valid: use dotted lowercase words like "
            "'o2o.kiosk.checkin'",
        )
    if priority is None:
        priority = default_priority(event_type)
    elif isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9:
        raise AgentError(Reason.INVALID_EVENT, f"priority {priority!r} is not valid: use 0 to 9")
    try:
        data_json = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AgentError(Reason.INVALID_EVENT, f"event data is not JSON: {exc}") from None
    if len(data_json) > MAX_DATA_BYTES:
        raise AgentError(
            Reason.INVALID_EVENT,
            f"event data is {len(data_json)} bytes; the limit is {MAX_DATA_BYTES}",
        )
    return PendingEvent(event_id or new_id(), event_type, created, data_json, priority)


def render(pending: PendingEvent, source: str, bootid: str, seq: int) -> str:
    """The committed event as CloudEvents structured JSON (one compact line)."""
    # Built by hand: every part but data is a validated token and data is already JSON,
    # and this runs once per event on the hot path.
    return (
        '{"specversion":"1.0","id":"' + pending.id
        + '","source":' + json.dumps(source)
        + ',"type":"' + pending.type
        + '","time":"' + rfc3339_utc(pending.created)
        + '","datacontenttype":"application/json","bootid":"' + bootid
        + '","seq":' + str(seq)
        + ',"data":' + pending.data_json + "}"
    )


def source_uri(store: str, device: str) -> str:
    return f"o2o-edge://{store}/{device}"
