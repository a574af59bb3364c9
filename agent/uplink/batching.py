"""Pure batching of outbox rows into CloudEvents batch messages (a JSON array of events)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.outbox.store import Row

_HISTORICAL = '{"historical":true,'


@dataclass(frozen=True, slots=True)
class Batch:
    rowids: tuple[int, ...]
    payload: bytes
    generation: int


def _event_text(row: Row, historical_before: float | None) -> str:
    # Backlog captured while the uplink was down is marked so the upstream does not mistake
    # it for live traffic.
    if historical_before is not None and row.created < historical_before:
        return _HISTORICAL + row.body[1:]
    return row.body


def build_batches(
    rows: Sequence[Row],
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
