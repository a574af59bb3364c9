"""Acknowledged rows held for the next events' transaction, when the caller asks for it
(`OutboxWriter.ack(..., hold=True)`; part of the writer's thread).

Every transaction writes each page it changes to the write-ahead log, and the kernel writes
the 4 KiB blocks those bytes touch. A row deleted in a transaction of its own costs about as
much again as its insert (~13 KiB per event with 1 KiB pages, measured by bench-wear;
~9.5 KiB held); deleted in the next events' transaction it rides on pages written anyway.
The rows stay in the file, counted as waiting, for up to ACK_HOLD_S: a caller that counts
them as gone at once (the uplink's drops, checked against the outbox) must not hold them.
Held rows stay hidden from the uplink's re-reads (it waits for the writer's transactions to
pass them), and a crash meanwhile only sends them again — at least once, as any PUBACK lost
with the connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

# How long a PUBACKed row may wait for the next events: longer than the gap between events of
# a quiet store (1 event/s: every delete rides on an insert), short enough that `status`
# shows a drained outbox soon after the last PUBACK.
ACK_HOLD_S: Final = 2.0
ACK_HOLD_ROWS: Final = 8192  # more held than this: deleted at once (a backlog draining)


class HeldAcks:
    def __init__(self, hold_s: float = ACK_HOLD_S, max_rows: int = ACK_HOLD_ROWS) -> None:
        self.hold_s = hold_s
        self.max_rows = max_rows
        self._rows: list[int] = []
        self._since = 0.0  # monotonic time the oldest held row was acknowledged

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, rows: Sequence[int], now: float) -> None:
        if rows and not self._rows:
            self._since = now
        self._rows.extend(rows)

    def wait_s(self, now: float) -> float | None:
        """How long until the held rows are due on their own (None: none held)."""
        return max(0.0, self._since + self.hold_s - now) if self._rows else None

    def take(self, now: float, committing: bool) -> list[int]:
        """The rows to delete now: all of them once a transaction is made anyway
        (`committing`), the oldest has waited `hold_s` or too many are held; else none."""
        if not self._rows or not (committing or now - self._since >= self.hold_s
                                  or len(self._rows) >= self.max_rows):
            return []
        rows, self._rows = self._rows, []
        return rows

    def clear(self) -> None:
        """The file was replaced: row numbers of the old one mean nothing in the new one."""
        self._rows = []
