"""Where in-process sources hand their events in: withheld when consent was withdrawn,
linked to the campaign and shopper-app visit they belong to, and queued for the outbox
writer. Never waits on the writer nor on the uplink."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Protocol

from agent.envelope import PendingEvent, make_pending
from agent.outbox import Committed


class Writer(Protocol):
    def submit(self, events: Sequence[PendingEvent]) -> Future[list[Committed]]: ...


class Capture:
    def __init__(self, writer: Writer, allows: Callable[[str, Any], bool],
                 enrich: Callable[[str, Any], Any],
                 clock: Callable[[], float] = time.time) -> None:
        self._writer = writer
        self._allows = allows
        self._enrich = enrich
        self._clock = clock

    def __call__(self, event_type: str, data: Any,
                 event_id: str | None = None) -> Future[list[Committed]]:
        """`event_id`: one the caller made (agent/envelope.py new_id) to name the event
        before it is committed (a check-in's alert names it as its cause); else a new one."""
        if not self._allows(event_type, data):
            done: Future[list[Committed]] = Future()
            done.set_result([])  # consent withdrawn: not reported at all
            return done
        data = self._enrich(event_type, data)
        return self._writer.submit([make_pending(event_type, data, self._clock(),
                                                 event_id=event_id)])
