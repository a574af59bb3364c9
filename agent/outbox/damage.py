"""The writer's damage path: the outbox file checked at open, and a file found damaged later
(by a write here or a reader of this process) moved aside for a fresh one, said upstream.

Part of OutboxWriter (agent/outbox/writer.py), which owns the file; kept apart so the group
commit loop reads on its own.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.envelope import PRIORITY_CRITICAL, PendingEvent, make_pending
from agent.outbox.reserve import DiskReserve
from agent.outbox.store import OutboxStore, quarantine, watch_corruption

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Damaged:
    """A reader met damage in the outbox file with this inode."""

    inode: int
    why: str


class DamagePath:
    """Opening the outbox and replacing a damaged one (runs on the writer thread)."""

    # the writer's state this part reads and updates (set in OutboxWriter.__init__)
    path: Path
    max_bytes: int
    ttl_s: float
    generation: int
    last_error: str
    quarantined: list[str]
    reserve: DiskReserve
    clock: Callable[[], float]
    _store: OutboxStore | None
    _notices: list[PendingEvent]
    _q: queue.SimpleQueue[Any]

    def _open(self) -> None:
        store, moved, why = OutboxStore.open(
            self.path, max_bytes=self.max_bytes, ttl_s=self.ttl_s
        )
        self._store = store
        if moved is not None:
            self._note_quarantine(moved, why)
        self.reserve.take()
        watch_corruption(self.path, lambda inode, why: self._q.put(Damaged(inode, why)))

    def _replace_damaged(self, why: str) -> None:
        """Move the damaged file aside and go on in a fresh one (on the writer thread)."""
        assert self._store is not None
        self._store.close()
        moved = quarantine(self.path)
        self._store = OutboxStore(self.path, max_bytes=self.max_bytes, ttl_s=self.ttl_s)
        self._note_quarantine(moved, why + self._store.recover(moved))

    def _note_quarantine(self, moved: Path, why: str) -> None:
        self.generation += 1
        self.quarantined.append(str(moved))
        self.last_error = f"outbox unusable ({why}); moved to {moved}, started a fresh one"
        log.error("%s", self.last_error)
        self._notices.append(
            make_pending(
                "o2o.agent.outbox.quarantined",
                {"moved_to": str(moved), "reason": why},
                self.clock(),
                PRIORITY_CRITICAL,
            )
        )
