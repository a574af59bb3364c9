"""Reporting what went wrong downstream without letting the sender choose how loud it is.

Every refusal and every failure to apply a document is counted, always (the counters are in
`status`). The log line and the upstream event about it are rate-limited per reason: the
first one in a window is reported at once with its detail; the ones after it in the same
window are only counted, and one summary with their number (and the last one's detail) is
reported when the window ends. A flood of 20,000 forged documents in ten seconds is then two
log lines and two events per reason, not 20,000 — and memory stays a few hundred bytes per
reason, with the number of reasons bounded too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

log = logging.getLogger("agent.storelink")

WINDOW_S: Final = 60.0  # one summary a minute per reason: a person reads that, a flood stays small
MAX_KEYS: Final = 64  # reasons are codes from this package; anything past this is lumped
MAX_DETAIL: Final = 300  # characters of detail kept and reported (the sender chose the rest)
OTHER: Final = "other"

Report = Callable[[str, dict[str, Any]], object]  # (event type, data) -> upstream
Schedule = Callable[[float, Callable[[], None]], object]  # run fn after delay seconds


def clip(text: str, limit: int = MAX_DETAIL) -> str:
    """At most `limit` characters, as printable text (a topic or a detail is the sender's)."""
    text = text if len(text) <= limit else text[:limit] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\n", "\\n")


@dataclass
class _Window:
    started: float
    suppressed: int = 0
    last: dict[str, Any] | None = None
    summary_due: bool = False


class Throttled:
    """One log line and one event per reason per window, plus a summary of the rest.

    `emit(event_type, data)` sends upstream; `schedule(delay, fn)` (optional) makes the
    summary go out when the window ends even if nothing else arrives — without it the
    summary goes out with the next report after the window.
    """

    def __init__(self, event_type: str, what: str, emit: Report,
                 schedule: Schedule | None = None, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.event_type = event_type
        self.what = what  # "refused a document", in the log lines
        self.emit = emit
        self.schedule = schedule
        self.window_s = window_s
        self.clock = clock
        self.suppressed_total = 0
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}

    def report(self, reason: str, data: dict[str, Any]) -> None:
        """Report (or count) one occurrence; `data` must be small (clip what is foreign)."""
        now = self.clock()
        arm = False
        with self._lock:
            if reason not in self._windows and len(self._windows) >= MAX_KEYS:
                reason = OTHER
            win = self._windows.get(reason)
            due = self._close_if_over(reason, win, now)
            if win is None or due is not None:
                self._windows[reason] = _Window(started=now)
                first = True
            else:
                win.suppressed += 1
                win.last = data
                self.suppressed_total += 1
                first = False
                arm = not win.summary_due
                win.summary_due = True
        if due is not None:
            self._summary(reason, *due)
        if first:
            log.warning("%s: %s", self.what, _line(data))
            self.emit(self.event_type, data)
        elif arm and self.schedule is not None:
            self.schedule(self.window_s, self.flush)

    def flush(self) -> None:
        """Send the summaries of windows that are over (the schedule calls this)."""
        now = self.clock()
        due = []
        with self._lock:
            for reason, win in list(self._windows.items()):
                closed = self._close_if_over(reason, win, now)
                if closed is not None:
                    del self._windows[reason]
                    due.append((reason, *closed))
                elif win.summary_due and self.schedule is not None:
                    # the window was restarted meanwhile; look again when it ends
                    self.schedule(max(0.0, win.started + self.window_s - now) + 0.01, self.flush)
        for reason, count, last in due:
            self._summary(reason, count, last)

    def _close_if_over(self, reason: str, win: _Window | None,
                       now: float) -> tuple[int, dict[str, Any] | None] | None:
        """(suppressed count, last data) of a window that is over, else None."""
        if win is None or now - win.started < self.window_s:
            return None
        if win.suppressed == 0:
            return (0, None)
        return (win.suppressed, win.last)

    def _summary(self, reason: str, count: int, last: dict[str, Any] | None) -> None:
        if count == 0 or last is None:
            return
        data = {**last, "more": count, "window_s": self.window_s}
        log.warning("%s: %d more (%s) in the last %.0f s; the last: %s", self.what, count,
                    reason, self.window_s, _line(last))
        self.emit(self.event_type, data)


def _line(data: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in data.items())
