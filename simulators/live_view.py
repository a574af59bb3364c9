"""The demo's live view: what the agent commits, as it commits it (the notable events, one
short line each), and every two seconds the store's clock, the outbox, the uplink and what
reached the collector."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Mapping
from typing import Any

from agent.bus.client import BusClient
from agent.contracts import events as ev


def summary(event: Mapping[str, Any]) -> str | None:
    """One short line for an event worth showing; None for the rest."""
    t, d = str(event.get("type", "")), event.get("data") or {}
    if t == ev.NFC_TAP:
        tag = d.get("tag", {})
        return f"tap: {tag.get('kind')} {tag.get('label', '')}".rstrip()
    if t == ev.QR_SCAN:
        return f"scan: {d.get('class')} {d.get('reason') or d.get('order') or ''}".rstrip()
    if t == ev.KIOSK_CHECKIN:
        return f"check-in: {d.get('kind')} {d.get('outcome')} via {d.get('via')}"
    if t == ev.KIOSK_SURVEY:
        return f"survey: {d.get('score')} of {d.get('scale')}"
    if t == ev.BLE_PRESENCE and d.get("kind") == "app" and d.get("action") != "zone":
        return f"app user {d.get('action')}s: …{str(d.get('id'))[-6:]}"
    if t == ev.BLE_BEACON_HEALTH and d.get("status") != "ok":
        return f"beacon …{str(d.get('beacon'))[-4:]}: {d.get('status')}"
    if t == ev.AGENT_OUTBOX_RESERVE:
        return f"disk reserve {d.get('status')}"
    if t.startswith(ev.LINK_PREFIX) or t == ev.PRIVACY_ERASED:
        return f"{t.removeprefix('o2o.')}: {d.get('kind') or d.get('state') or ''}".rstrip()
    return None


class LiveView:
    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.stop = threading.Event()
        self._threads = [threading.Thread(target=self._status, name="live-status", daemon=True),
                         threading.Thread(target=self._events, name="live-events", daemon=True)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        self._threads[0].join(5)  # the event reader ends with the agent's bus

    def _clock(self) -> str:
        return str(self.runner.clock_text(self.runner.store_time()))

    def _upstream(self) -> str:
        if self.runner.stage.link is None:
            return "no broker: buffering"
        try:
            with contextlib.closing(sqlite3.connect(self.runner.stage.collector_db,
                                                    timeout=1)) as conn:
                n = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        except sqlite3.Error:
            n = 0
        return f"{n} upstream"

    def _status(self) -> None:
        while not self.stop.wait(2.0):
            if not self.runner.t0 or self.runner.stage.agent is None:
                continue
            with contextlib.suppress(Exception):
                st = self.runner.stage.status()
                o, u = st["outbox"], st["uplink"]
                print(f"   [{self._clock()}] committed {o['seq']:4d} · outbox {o['depth']:3d} "
                      f"waiting · uplink {u['state']:<12} · {self._upstream()}", flush=True)

    def _events(self) -> None:
        while not self.stop.wait(0.5):
            if not self.runner.t0 or self.runner.stage.agent is None:
                continue
            with contextlib.suppress(Exception), \
                    BusClient(self.runner.stage.bus_socket) as bus:
                for event in bus.subscribe():
                    if self.stop.is_set():
                        return
                    line = summary(event)
                    if line:
                        print(f"   [{self._clock()}]   agent #{event.get('seq')}: {line}",
                              flush=True)
