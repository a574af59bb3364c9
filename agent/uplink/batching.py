"""Pure batching of outbox rows into CloudEvents batch messages (a JSON array of events)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

_HISTORICAL = '{"historical":true,'
MIN_BATCH_BYTES: Final = 1024  # below this a batch is all MQTT overhead (unless the broker says so)
# A PUBLISH besides its payload: fixed header (1) and remaining length (at most 4), the topic's
# length (2), the packet id (2); MQTT 5 adds the properties' length and the Content Type
# property (1 + 2 + 34 bytes) — 64 leaves room for it.
PUBLISH_HEADER_BYTES: Final = 1 + 4 + 2 + 2
V5_PROPERTY_BYTES: Final = 64
GROW_AFTER: Final = 4  # successful messages at a lowered size before trying twice as much
GROW_AFTER_MAX: Final = 256  # a size the broker keeps refusing is tried again this rarely


@dataclass(frozen=True, slots=True)
class Batch:
    rowids: tuple[int, ...]
    payload: bytes
    generation: int


class EventRow(Protocol):
    """An outbox row as read back (outbox.store.Row) or as just committed (Committed)."""

    @property
    def n(self) -> int: ...

    @property
    def created(self) -> float: ...

    @property
    def body(self) -> str: ...


def _event_text(row: EventRow, historical_before: float | None) -> str:
    # Backlog captured while the uplink was down is marked so the upstream does not mistake
    # it for live traffic.
    if historical_before is not None and row.created < historical_before:
        return _HISTORICAL + row.body[1:]
    return row.body


def build_batches(
    rows: Sequence[EventRow],
    *,
    max_events: int,
    max_bytes: int,
    generation: int = 0,
    historical_before: float | None = None,
) -> list[Batch]:
    """Pack rows in order into messages of at most `max_events` events and `max_bytes` bytes.

    A single event larger than `max_bytes` still gets a batch of its own: the broker decides,
    and a refusal of a one-event batch is handled by the caller.
    """
    batches: list[Batch] = []
    ids: list[int] = []
    parts: list[bytes] = []
    size = 2  # "[" and "]"
    for row in rows:
        text = _event_text(row, historical_before).encode()
        extra = len(text) + (1 if parts else 0)
        if parts and (len(parts) >= max_events or size + extra > max_bytes):
            batches.append(Batch(tuple(ids), b"[" + b",".join(parts) + b"]", generation))
            ids, parts, size = [], [], 2
            extra = len(text)
        ids.append(row.n)
        parts.append(text)
        size += extra
    if parts:
        batches.append(Batch(tuple(ids), b"[" + b",".join(parts) + b"]", generation))
    return batches


def split_batch(batch: Batch) -> tuple[Batch, Batch]:
    """Halve a batch the broker refused as too large. Needs at least two events."""
    if len(batch.rowids) < 2:
        raise ValueError("a one-event batch cannot be split")
    # the payload is a JSON array of compact objects, so top-level separators are "},{"
    # only where nesting depth is zero: re-split by walking the array.
    items = _split_array(batch.payload)
    half = len(items) // 2
    left = Batch(batch.rowids[:half], b"[" + b",".join(items[:half]) + b"]", batch.generation)
    right = Batch(batch.rowids[half:], b"[" + b",".join(items[half:]) + b"]", batch.generation)
    return left, right


def _split_array(payload: bytes) -> list[bytes]:
    """Top-level elements of a JSON array of objects, without decoding them."""
    items: list[bytes] = []
    depth = 0
    in_str = False
    escaped = False
    start = 1
    for i in range(1, len(payload) - 1):
        c = payload[i]
        if in_str:
            if escaped:
                escaped = False
            elif c == 0x5C:  # backslash
                escaped = True
            elif c == 0x22:
                in_str = False
            continue
        if c == 0x22:
            in_str = True
        elif c in (0x7B, 0x5B):
            depth += 1
        elif c in (0x7D, 0x5D):
            depth -= 1
        elif c == 0x2C and depth == 0:
            items.append(payload[start:i])
            start = i + 1
    items.append(payload[start : len(payload) - 1])
    return items


def publish_overhead(topic: str, v5: bool) -> int:
    """Bytes a PUBLISH of events on `topic` adds to its payload (an upper bound)."""
    return PUBLISH_HEADER_BYTES + len(topic.encode()) + (V5_PROPERTY_BYTES if v5 else 0)


class BatchSizer:
    """How many events and bytes go into one message, lowered on a refusal and grown back.

    A refused size is halved at once; after `grow_after` successful messages in a row the
    size doubles again, up to the configured ceiling. A size that was refused right after
    growing makes the next growth wait twice as long (up to GROW_AFTER_MAX messages), so a
    broker with a fixed limit costs a refusal rarely, and a flaky one does not shrink the
    batches for good.
    """

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.ceiling_events = max(1, max_events)
        self.configured_bytes = max(MIN_BATCH_BYTES, max_bytes)
        self.ceiling_bytes = self.configured_bytes
        self.events = self.ceiling_events
        self.bytes = self.ceiling_bytes
        self.grow_after = GROW_AFTER
        self._streak = 0
        self._grew = False  # the last change was a growth, not yet shown to work
        self._before = (self.events, self.bytes)  # the size before the last growth
        self.lowered = 0  # times a refusal lowered the size (reported)
        # payload bytes the connected broker takes in one message (None: it said nothing)
        self.broker_limit: int | None = None

    def set_broker_limit(self, max_bytes: int | None) -> None:
        """A connection's limit (the broker's Maximum Packet Size less overhead); each
        connection sets it anew, so one broker's small limit does not outlive it. The
        broker's word beats MIN_BATCH_BYTES: a batch over its limit is never taken."""
        limit = self.configured_bytes
        self.broker_limit = None if max_bytes is None else max(1, max_bytes)
        if self.broker_limit is not None:
            limit = min(limit, self.broker_limit)
        self.ceiling_bytes = limit
        self.bytes = min(self.bytes, limit)

    def fits_broker(self, nbytes: int) -> bool:
        """Whether a payload of `nbytes` is within the connected broker's announced limit."""
        return self.broker_limit is None or nbytes <= self.broker_limit

    def refused(self, events: int, nbytes: int) -> None:
        """A message of `events` events and `nbytes` bytes was too large: send at most half
        of it from now on (many refusals of same-sized messages lower it once)."""
        new_events = max(1, min(self.events, events // 2))
        floor = min(MIN_BATCH_BYTES, self.ceiling_bytes)  # a broker's small limit is the floor
        new_bytes = max(floor, min(self.bytes, nbytes // 2))
        if (new_events, new_bytes) == (self.events, self.bytes):
            return
        if self._grew:
            self.grow_after = min(GROW_AFTER_MAX, self.grow_after * 2)
        self.events, self.bytes = new_events, new_bytes
        self._streak, self._grew = 0, False
        self.lowered += 1

    def succeeded(self, events: int = 0, nbytes: int = 0) -> None:
        """A message of `events` events and `nbytes` bytes was taken."""
        if self._grew and (events > self._before[0] or nbytes > self._before[1]):
            # a message larger than the size before the last growth went through: the new
            # size works, and growing goes on at the normal pace
            self._grew, self.grow_after = False, GROW_AFTER
        if self.events >= self.ceiling_events and self.bytes >= self.ceiling_bytes:
            self._streak, self.grow_after = 0, GROW_AFTER  # full size works: all is well
            return
        self._streak += 1
        if self._streak >= self.grow_after:
            self._before = (self.events, self.bytes)
            self.events = min(self.ceiling_events, self.events * 2)
            self.bytes = min(self.ceiling_bytes, self.bytes * 2)
            self._streak, self._grew = 0, True
