"""The bus's edge: a request line parsed and an emit's events checked before anything looks at
them, each refusal with its reason (what the client is told) and its key (what is counted)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from typing import Any, Final

from agent.bus.limits import MAX_BUS_TYPES, RESERVED_PREFIXES, BusCounters, line
from agent.contracts.bus import ErrorReply, error_reply
from agent.envelope import check_type
from agent.errors import AgentError, Reason


def error(req: Any, reason: Reason, message: str) -> ErrorReply:
    return error_reply(req, reason, message)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# NaN and Infinity are not JSON: refused while parsing, not deep inside a handler
_DECODE = json.JSONDecoder(parse_constant=_no_constant).decode
LAGGED = line({"ok": False, "reason": Reason.LAGGED.value,
               "error": "this subscriber fell too far behind and was dropped; subscribe again"})


class Refused(AgentError):
    """A request refused at the edge: counted under `key`, answered with `reason`."""

    def __init__(self, key: str, reason: Reason, message: str) -> None:
        super().__init__(reason, message)
        self.key = key


class Stalled(AgentError):
    """The peer does not take its answers (the connection is closed)."""

    def __init__(self) -> None:
        super().__init__(Reason.BUS_UNAVAILABLE, "the peer does not read its answers")


# JSON objects and lists one request line may hold, counted in C (bytes.count: ~0.1 ms a MiB)
# before anything parses it: building a container costs the parser ~0.7 us (250,000 of them in
# a 1 MB line held the event loop 166 ms). A maximal emit (5,000 events of flat data) holds
# ~10,000; a "[" or "{" inside a string is counted too, which only errs on the safe side.
MAX_CONTAINERS: Final = 30_000
_WS = re.compile(r"[ \t\n\r]*")
_RAW = json.JSONDecoder(parse_constant=_no_constant).raw_decode


def parse(raw: bytes) -> dict[str, Any]:
    """A request line as a JSON object, or Refused saying what is wrong with it."""
    return _decode(raw, _DECODE)


def parse_in_steps(raw: bytes) -> dict[str, Any]:
    """parse() for a big line, run in a worker thread: the object is parsed value by value and
    its "events" list event by event, so no one C call holds the GIL for long and the event
    loop (pings, check-ins) runs between steps."""
    return _decode(raw, _object_in_steps)


def _decode(raw: bytes, decode: Callable[[str], Any]) -> dict[str, Any]:
    if raw.count(b"[") + raw.count(b"{") > MAX_CONTAINERS:
        raise Refused("too-many-containers", Reason.BUS_PROTOCOL,
                      f"request holds more than {MAX_CONTAINERS} JSON objects and lists; "
                      "send fewer or flatter events per request")
    try:
        msg = decode(raw.decode())
    except UnicodeDecodeError:
        raise Refused("not-json", Reason.BUS_PROTOCOL, "request is not UTF-8 text") from None
    except RecursionError:
        raise Refused("too-deep", Reason.BUS_PROTOCOL, "request is nested too deeply") from None
    except ValueError as exc:  # not JSON, or an integer too long to convert
        raise Refused("not-json", Reason.BUS_PROTOCOL,
                      f"request is not JSON: {short(str(exc), 200)}") from None
    if not isinstance(msg, dict):
        raise Refused("not-an-object", Reason.BUS_PROTOCOL, "request must be a JSON object")
    return msg


def _skip(text: str, i: int) -> int:
    """The index past the JSON whitespace at i."""
    m = _WS.match(text, i)
    return m.end() if m else i


def _object_in_steps(text: str) -> Any:
    i = _skip(text, 0)
    if not text.startswith("{", i):
        return _DECODE(text)  # not an object: refused after, and only containers are slow
    out: dict[str, Any] = {}
    i = _skip(text, i + 1)
    if text.startswith("}", i):
        i += 1
    else:
        while True:
            if not text.startswith('"', i):
                raise ValueError(f"expected a key in double quotes at char {i}")
            key, i = _RAW(text, i)
            i = _skip(text, i)
            if not text.startswith(":", i):
                raise ValueError(f"expected ':' at char {i}")
            i = _skip(text, i + 1)
            if key == "events" and text.startswith("[", i):
                out[key], i = _list_in_steps(text, i)
            else:
                out[key], i = _RAW(text, i)
            i = _skip(text, i)
            if text.startswith(",", i):
                i = _skip(text, i + 1)
                continue
            if text.startswith("}", i):
                i += 1
                break
            raise ValueError(f"expected ',' or '}}' at char {i}")
    if _skip(text, i) != len(text):
        raise ValueError(f"extra data at char {i}")
    return out


def _list_in_steps(text: str, i: int) -> tuple[list[Any], int]:
    items: list[Any] = []
    i = _skip(text, i + 1)
    if text.startswith("]", i):
        return items, i + 1
    while True:
        item, i = _RAW(text, i)
        items.append(item)
        i = _skip(text, i)
        if text.startswith(",", i):
            i = _skip(text, i + 1)
            continue
        if text.startswith("]", i):
            return items, i + 1
        raise ValueError(f"expected ',' or ']' at char {i}")


async def until_eof(reader: asyncio.StreamReader) -> None:
    """Read and drop whatever a subscriber sends, until it goes away (read() without a size
    would keep all of it in memory)."""
    with contextlib.suppress(Exception):
        while await reader.read(65536):
            pass


def short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_events(raw: list[Any], known: set[str], counters: BusCounters) -> None:
    """What can be refused before anything is looked at (consent, visits): the shape, the
    type, an id. The types a valid request introduces join `known` at once, so concurrent
    requests cannot pass the cap together."""
    new: set[str] = set()
    for i, ev in enumerate(raw):
        key, why = "", ""
        if not isinstance(ev, dict) or "type" not in ev:
            key, why = "not-an-object", 'must be an object with "type" and "data"'
        elif ev.get("id") is not None:
            key, why = "client-id", ('"id" is not accepted: the agent gives every event a '
                                     "unique id; put your own reference in data")
        elif not isinstance(ev["type"], str) or ev["type"] not in known:
            etype = ev["type"]
            try:
                check_type(etype)
            except AgentError as exc:
                key, why = "type", str(exc)
            else:
                if etype.startswith(RESERVED_PREFIXES):
                    key, why = "reserved-type", (
                        f"type {etype!r} is the agent's own record; choose another type")
                elif etype not in new:
                    if len(known) + len(new) >= MAX_BUS_TYPES:
                        key, why = "too-many-types", (
                            f"bus clients already introduced {MAX_BUS_TYPES} event types "
                            "since the agent started; reuse one of them")
                    else:
                        new.add(etype)
        if key:
            counters.refused_events[key] += 1
            raise Refused("invalid-event", Reason.INVALID_EVENT, f"event {i}: {why}")
    known |= new
