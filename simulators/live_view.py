"""The demo's live view: one timeline in store time. What the shoppers and the faults do (the
runner's lines), what the agent commits (told in words by simulators/story.py) and, when it
changes, the state of the outbox and the uplink — each line stamped with the store's clock
as it is printed, so the timeline never runs backwards."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

from agent.bus.client import BusClient
from simulators.story import Story


class Timeline:
    """Lines stamped with the store's clock ("HH:MM"); printed in the order they come, which
    is the clock's order: the clock only moves on."""

    def __init__(self, clock: Callable[[], str], out: TextIO | None = None) -> None:
        self._clock = clock
        self._out = out or sys.stdout
        self._lock = threading.Lock()
        self._last = "00:00"
        self.lines: list[str] = []

    def line(self, text: str, indent: int = 0) -> None:
        with self._lock:
            now = max(self._clock(), self._last)  # "HH:MM" strings sort as times
            self._last = now
            line = f"{now}  {' ' * indent}{text}"
            self.lines.append(line)
            print(line, file=self._out, flush=True)


class LiveView:
    def __init__(self, runner: Any, story: Story, timeline: Timeline) -> None:
        self.runner = runner
        self.story = story
        self.timeline = timeline
        self.stop = threading.Event()
        self._last_state: tuple[str, bool] | None = None
        self._down_since: str | None = None
        self._shown_waiting = 0
        self._threads = [threading.Thread(target=self._status, name="live-status", daemon=True),
                         threading.Thread(target=self._events, name="live-events", daemon=True)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        self._threads[0].join(5)  # the event reader ends with the agent's bus
        if self._down_since is not None:
            self.story.tally.outages.append([self._down_since, self._clock()])

    def _clock(self) -> str:
        if not self.runner.t0:
            return str(self.runner.clock_text(0))
        return str(self.runner.clock_text(max(0.0, self.runner.store_time())))

    def _upstream(self) -> int | None:
        if self.runner.stage.link is None:
            return None
        try:
            with contextlib.closing(sqlite3.connect(self.runner.stage.collector_db,
                                                    timeout=1)) as conn:
                return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
        except sqlite3.Error:
            return 0

    def _status(self) -> None:
        while not self.stop.wait(1.0):
            if not self.runner.t0 or self.runner.stage.agent is None:
                continue
            with contextlib.suppress(Exception):
                self._report(self.runner.stage.status())

    def _report(self, st: Any) -> None:
        """A line when the uplink comes or goes, or events start or stop waiting; while it
        is down, a line each time the waiting count grows."""
        waiting, state = int(st["outbox"]["depth"]), str(st["uplink"]["state"])
        tally = self.story.tally
        tally.waiting_max = max(tally.waiting_max, waiting)
        up = self._upstream()
        if up is not None:
            tally.upstream = up
        key = (state, waiting > 0)
        grew = state != "connected" and waiting > self._shown_waiting
        if key == self._last_state and not grew:
            return
        self._last_state = key
        self._shown_waiting = waiting
        if self.runner.stage.link is None:
            self.timeline.line(f"outbox: {waiting} events kept (no broker to send them to)", 4)
            return
        if state == "connected":
            if self._down_since is not None:
                tally.outages.append([self._down_since, self._clock()])
                self._down_since = None
            said = f"{waiting} events on their way" if waiting else "nothing waits"
            self.timeline.line(f"uplink connected: {said}; {up} events upstream", 4)
        else:
            if self._down_since is None:
                self._down_since = self._clock()
            self.timeline.line(f"uplink {state}: {waiting} events wait safe in the outbox; "
                               f"{up} upstream", 4)

    def _events(self) -> None:
        while not self.stop.wait(0.5):
            if not self.runner.t0 or self.runner.stage.agent is None:
                continue
            with contextlib.suppress(Exception), \
                    BusClient(self.runner.stage.bus_socket) as bus:
                for event in bus.subscribe():
                    if self.stop.is_set():
                        return
                    line = self.story.tell(event, self._clock())
                    if line:
                        self.timeline.line(f"agent: {line}", 2)
