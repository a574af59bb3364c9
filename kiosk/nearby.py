"""Which opted-in app is at the kiosk, from the presence events the kiosk receives: an app is
at the kiosk in the "immediate" or "near" zone of the agent's reader (the Pi sits in the
kiosk), until its exit. The agent sends no presence of an app whose consent is withdrawn.

A personal offer is shown only for one app clearly closest: nobody when two apps are equally
close (the offer could be read by the wrong person), nor when none is at the kiosk.
"""

from __future__ import annotations

from typing import Any, Final

from agent.contracts import events as ev
from agent.contracts.bus import CloudEvent

# the zones at the kiosk, closest first (agent/presence/tracker.py: under 0.5 m, under 3 m)
RANK: Final = {"immediate": 0, "near": 1}
MAX_TRACKED: Final = 256  # apps in range at once; more is no store floor, an attack


class NearbyApps:
    def __init__(self) -> None:
        self.zones: dict[str, str] = {}  # app identifier -> its last zone

    def observe(self, event: CloudEvent) -> bool:
        """Take a presence event; True when it changed who is where."""
        data: Any = event.get("data")
        if event.get("type") != ev.BLE_PRESENCE or not isinstance(data, dict) \
                or data.get("kind") != "app" or not isinstance(data.get("id"), str):
            return False
        app, action = data["id"], data.get("action")
        if action == "exit":
            return self.zones.pop(app, None) is not None
        zone = data.get("zone")
        if action not in ("enter", "zone") or not isinstance(zone, str) \
                or self.zones.get(app) == zone:
            return False
        if app not in self.zones and len(self.zones) >= MAX_TRACKED:
            return False
        self.zones[app] = zone
        return True

    def one_at_kiosk(self) -> str | None:
        """The app closest to the kiosk when it is the only one that close; else None."""
        at = [(RANK[zone], app) for app, zone in self.zones.items() if zone in RANK]
        if not at:
            return None
        best = min(rank for rank, _ in at)
        closest = [app for rank, app in at if rank == best]
        return closest[0] if len(closest) == 1 else None
