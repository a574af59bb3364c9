"""Which opted-in app is at the kiosk, from the presence events the kiosk receives: an app is
at the kiosk in the "immediate" or "near" zone of the agent's reader (the Pi sits in the
kiosk), until its exit. The agent sends no presence of an app whose consent is withdrawn.

A personal offer is shown only for one app clearly closest: nobody when two apps are equally
close (the offer could be read by the wrong person), nor when none is at the kiosk.

An app the kiosk has heard nothing of for STALE_S is forgotten: an erased app's track ends
without an exit, and left in place it would stand "equally close" beside the next shopper.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from agent.contracts import events as ev
from agent.contracts.bus import CloudEvent

# the zones at the kiosk, closest first (agent/presence/tracker.py: under 0.5 m, under 3 m)
RANK: Final = {"immediate": 0, "near": 1}
MAX_TRACKED: Final = 256  # apps in range at once; more is no store floor, an attack
STALE_S: Final = 1800.0  # half an hour without a word of an app: it is gone, exit or not


class NearbyApps:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.zones: dict[str, str] = {}  # app identifier -> its last zone
        self._heard: dict[str, float] = {}  # app identifier -> when its last event came

    def observe(self, event: CloudEvent) -> bool:
        """Take a presence event; True when it changed who is where."""
        data: Any = event.get("data")
        if event.get("type") != ev.BLE_PRESENCE or not isinstance(data, dict) \
                or data.get("kind") != "app" or not isinstance(data.get("id"), str):
            return False
        app, action = data["id"], data.get("action")
        if action == "exit":
            self._heard.pop(app, None)
            return self.zones.pop(app, None) is not None
        zone = data.get("zone")
        if action not in ("enter", "zone") or not isinstance(zone, str):
            return False
        if self.zones.get(app) == zone:
            self._heard[app] = self.clock()
            return False
        if app not in self.zones and len(self.zones) >= MAX_TRACKED:
            return False
        self.zones[app] = zone
        self._heard[app] = self.clock()
        return True

    def forget_stale(self) -> bool:
        """Drop the apps not heard of for STALE_S; True if any was."""
        old = [a for a, at in self._heard.items() if self.clock() - at >= STALE_S]
        for app in old:
            del self._heard[app]
            self.zones.pop(app, None)
        return bool(old)

    def one_at_kiosk(self) -> str | None:
        """The app closest to the kiosk when it is the only one that close; else None."""
        self.forget_stale()
        at = [(RANK[zone], app) for app, zone in self.zones.items() if zone in RANK]
        if not at:
            return None
        best = min(rank for rank, _ in at)
        closest = [app for rank, app in at if rank == best]
        return closest[0] if len(closest) == 1 else None
