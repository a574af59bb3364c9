"""Warnings the outbox repeats on every commit (a full disk) at most once a minute per kind.

A full disk refuses every emit; one line each filled the log (and the disk it is on) with the
same sentence. Every refusal is still counted where it happens (drops, last_error); the log
says it once a minute with how many were not written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

EVERY_S: Final = 60.0  # long enough to keep a full disk's log short, short enough to notice


class QuietLog:
    def __init__(self, log: logging.Logger, every_s: float = EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log, self.every_s, self.clock = log, every_s, clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, kind: str, msg: str, *args: object) -> None:
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.every_s:
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        self._last[kind] = now
        held = self._held.pop(kind, 0)
        if held:
            msg += f" ({held} more like it in the last {self.every_s:.0f} s not logged)"
        self.log.warning(msg, *args)
