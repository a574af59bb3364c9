"""CloudEvents 1.0 envelope (structured JSON mode) with the `bootid` and `seq` extensions.

An event gets its `id` (ULID) and `time` when it is captured and its `seq` when it is committed,
so that `seq` counts committed events of one boot without gaps: the upstream can tell a lost
event (a hole in `seq`) from a duplicate (the same `id` twice).
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

# Priorities (higher leaves the outbox first and is dropped last) come from the event
# registry: one per registered type, and a family rule for types bus clients introduce.
# Re-exported: the outbox's own notices name them from here.
from agent.contracts.events import PRIORITY_CRITICAL as PRIORITY_CRITICAL
from agent.contracts.events import PRIORITY_HIGH as PRIORITY_HIGH
from agent.contracts.events import PRIORITY_LOW as PRIORITY_LOW
from agent.contracts.events import PRIORITY_NORMAL as PRIORITY_NORMAL
from agent.contracts.events import priority_of
from agent.errors import AgentError, Reason

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
MAX_DATA_BYTES = 64 * 1024
# A type is a label of every metric and roll-up that counts it: long ones cost memory for good.
MAX_TYPE_LEN: Final = 128
# fullmatch, never `$`: `$` also matches before a trailing newline, and a type is pasted raw
# into the rendered JSON (render), where a newline or a quote would break a whole batch
_TYPE_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9][a-z0-9_-]*){1,7}")
# The only ids render() may paste raw: ULID-like tokens (letters and digits).
_ID_RE: Final = re.compile(r"[0-9A-Za-z]{1,64}")

_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
# Event types are few and repeat: validate and rank each once.
_KNOWN_TYPES: dict[str, int] = {}
_time_cache: tuple[int, str] = (-1, "")
_ms_text: tuple[int, str] = (-1, "")
_rng = random.Random(os.urandom(32))  # noqa: S311 - uniqueness, not secrecy


def default_priority(event_type: str) -> int:
    return priority_of(event_type)


def rfc3339_utc(ts: float) -> str:
    global _time_cache, _ms_text
    total_ms = int(ts * 1000 + 0.5)
    if total_ms == _ms_text[0]:  # events captured together share their timestamp
        return _ms_text[1]
    sec, ms = divmod(total_ms, 1000)
    if sec != _time_cache[0]:
        stamp = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _time_cache = (sec, stamp)
    text = f"{_time_cache[1]}.{ms:03d}Z"
    _ms_text = (total_ms, text)
    return text


_CROCKFORD_DIGITS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ms_cache: tuple[int, str] = (-1, "")
# every 10-bit value as its two base32 digits
_PAIRS = [a + b for a in _CROCKFORD_DIGITS for b in _CROCKFORD_DIGITS]


def _ulid_time(ms: int) -> str:
    global _ms_cache
    if ms != _ms_cache[0]:
        digits = []
        for shift in range(45, -1, -5):
            digits.append(_CROCKFORD_DIGITS[(ms >> shift) & 31])
        _ms_cache = (ms, "".join(digits))
    return _ms_cache[1]


def new_id() -> str:
    """A ULID: 48-bit millisecond time (10 digits) and 80 random bits (16 digits), in
    Crockford base32."""
    # ids must be unique, not secret: a seeded PRNG avoids a system call per event
    r = _rng.getrandbits(80)
    t = _PAIRS
    return (
        _ulid_time(int(time.time() * 1000))
        + t[r >> 70] + t[(r >> 60) & 1023] + t[(r >> 50) & 1023] + t[(r >> 40) & 1023]
        + t[(r >> 30) & 1023] + t[(r >> 20) & 1023] + t[(r >> 10) & 1023] + t[r & 1023]
    )


class PendingEvent(NamedTuple):
    """A validated event waiting for its commit; `data_json` is already serialised.
    (A NamedTuple: built once per event on the hot path, it is the cheapest record.)"""

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
    """Validate an event from any producer; raises AgentError(INVALID_EVENT) saying why.
    Everything that render() pastes raw is checked here, so a committed event is always
    valid JSON that encodes as UTF-8."""
    type_priority = _KNOWN_TYPES.get(event_type) if isinstance(event_type, str) else None
    if type_priority is None:
        check_type(event_type)
        type_priority = default_priority(event_type)
        if len(_KNOWN_TYPES) < 10_000:
            _KNOWN_TYPES[event_type] = type_priority
    if priority is None:
        priority = type_priority
    elif isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9:
        raise AgentError(Reason.INVALID_EVENT,
                         f"priority {_short(priority)} is not valid: use 0 to 9")
    if event_id is not None and (not isinstance(event_id, str) or not _ID_RE.fullmatch(event_id)):
        raise AgentError(Reason.INVALID_EVENT, "event id must be 1-64 letters and digits")
    try:
        data_json = _ENCODE(data)
    except (TypeError, ValueError) as exc:
        raise AgentError(Reason.INVALID_EVENT,
                         f"event data is not JSON: {_short(str(exc), 200)}") from None
    except RecursionError:
        raise AgentError(Reason.INVALID_EVENT, "event data is nested too deeply") from None
    size = len(data_json)
    if not data_json.isascii():  # the common case is ASCII and costs nothing more
        try:
            size = len(data_json.encode())
        except UnicodeEncodeError:
            raise AgentError(
                Reason.INVALID_EVENT,
                f"event data {_surrogate_path(data)} holds a lone UTF-16 surrogate, which is "
                "not text: send valid Unicode (UTF-8)",
            ) from None
    if size > MAX_DATA_BYTES:
        raise AgentError(
            Reason.INVALID_EVENT,
            f"event data is {size} bytes; the limit is {MAX_DATA_BYTES}",
        )
    return PendingEvent(event_id or new_id(), event_type, created, data_json, priority)


def check_type(event_type: Any) -> None:
    """Refuse an event type that is not dotted lowercase words of at most MAX_TYPE_LEN."""
    if not isinstance(event_type, str) or len(event_type) > MAX_TYPE_LEN \
            or not _TYPE_RE.fullmatch(event_type):
        raise AgentError(
            Reason.INVALID_EVENT,
            f"event type {_short(event_type)} is not valid: use dotted lowercase words like "
            f"'o2o.kiosk.checkin', at most {MAX_TYPE_LEN} characters",
        )


def _short(value: Any, limit: int = 60) -> str:
    """A value for an error message: repr'd (escapes control characters and surrogates) and
    cut, so a 1 MB type does not come back as a 1 MB answer."""
    text = repr(value) if not isinstance(value, str) or len(value) <= limit \
        else repr(value[:limit]) + "..."
    return text if len(text) <= limit + 8 else text[: limit + 5] + "..."


def _is_text(s: str) -> bool:
    try:
        s.encode()
    except UnicodeEncodeError:
        return False
    return True


def _surrogate_path(data: Any, path: str = "") -> str:
    """Where in `data` the string that is not valid Unicode is, as `field.sub[3]` (only
    walked when encoding already failed)."""
    stack: list[tuple[Any, str]] = [(data, path)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            if not _is_text(value):
                return f"field {where or '(the data itself)'!r}"
        elif isinstance(value, dict):
            for k, v in value.items():
                key = str(k)
                name = f"{where}.{key}" if where else key
                if not _is_text(key):
                    return f"field {name!a} (its name)"
                stack.append((v, name))
        elif isinstance(value, list | tuple):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(value))
    return "(somewhere)"


def render(pending: PendingEvent, source: str, bootid: str, seq: int) -> str:
    """The committed event as CloudEvents structured JSON (one compact line).
    `source` is the source URI already as a JSON string (see `source_json`)."""
    # Built by hand: this runs once per event on the hot path. Nothing here may break the
    # JSON: id and type are fullmatched tokens (make_pending), data is JSON that encodes as
    # UTF-8, bootid is our own ULID, source is json.dumps'd with ASCII escapes.
    return (
        '{"specversion":"1.0","id":"' + pending.id
        + '","source":' + source
        + ',"type":"' + pending.type
        + '","time":"' + rfc3339_utc(pending.created)
        + '","datacontenttype":"application/json","bootid":"' + bootid
        + '","seq":' + str(seq)
        + ',"data":' + pending.data_json + "}"
    )


def source_uri(store: str, device: str) -> str:
    return f"o2o-edge://{store}/{device}"


def source_json(source: str) -> str:
    return json.dumps(source, ensure_ascii=True)  # escapes whatever the config holds
