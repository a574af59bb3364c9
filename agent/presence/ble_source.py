"""The BLE source: scanner adverts -> decoded frames -> presence, health, footfall events.

What leaves as an event (DESIGN: "What the beacons are for"):
- the store's registered beacons: presence, TLM health (rate-limited), silence, low battery;
- the opted-in shopper app (iBeacon with a configured proximity UUID): presence, keyed by the
  app's own advertised identifier;
- everything else: only per-minute counts and a dwell histogram of daily-salted pseudonyms.
No event carries a Bluetooth address.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from agent.clock import SteadyClock
from agent.config import BleConfig
from agent.presence.anonymous import DailySalt, FootfallCounter
from agent.presence.tracker import PresenceConfig, PresenceEvent, PresenceTracker
from drivers.ble.capture import Advert
from drivers.ble.decoders import decode_advert
from drivers.ble.models import AltBeacon, Beacon, EddystoneTLM, EddystoneUID, IBeacon
from drivers.ble.scanner import BeaconScanner

Emit = Callable[[str, Any], object]
TICK_S = 1.0
IDENTITY_CACHE = 4096  # distinct beacon frames remembered (cleared when full)
_REGISTERED, _APP = "registered", "app"


def beacon_key(beacon: Beacon) -> str | None:
    """The identity a registered beacon is configured under (see [ble] beacons)."""
    if isinstance(beacon, IBeacon):
        return f"ibeacon:{beacon.uuid}:{beacon.major}:{beacon.minor}"
    if isinstance(beacon, EddystoneUID):
        return f"eddystone-uid:{beacon.namespace}:{beacon.instance}"
    if isinstance(beacon, AltBeacon):
        return f"altbeacon:{beacon.beacon_id}"
    return None


class BleSource:
    def __init__(self, cfg: BleConfig, scanner: BeaconScanner, emit: Emit,
                 clock: SteadyClock | None = None, capture_time: bool = False,
                 wall: Callable[[], float] = time.time) -> None:
        """`capture_time`: time follows the adverts' own timestamps (replaying a recorded
        day), so presence, silence and footfall come out as they happened. Live, presence,
        silence and health are timed on a clock that NTP steps do not move; the times in
        events are on the wall clock."""
        self.cfg = cfg
        self.capture_time = capture_time
        self._capture_now = 0.0
        self.scanner = scanner
        self.emit = emit
        self.clock = clock or SteadyClock(wall=wall)
        self.registered = set(cfg.beacons)
        self.app_uuids = set(cfg.app_uuids)
        self.presence = PresenceTracker(PresenceConfig(
            path_loss_exponent=cfg.path_loss_exponent, immediate_m=cfg.immediate_m,
            near_m=cfg.near_m, zone_margin=cfg.zone_margin, zone_hold_s=cfg.zone_hold_s))
        # the salt changes with the calendar day: the wall clock's, even when it steps
        self.footfall = FootfallCounter(DailySalt(self.now if capture_time else wall))
        # Eddystone TLM frames come from the same address as the beacon's UID frames
        self._key_by_address: dict[str, str] = {}
        self._last_heard: dict[str, float] = {}
        self._identities: dict[tuple[Any, ...], tuple[Beacon, str, str]] = {}
        self._last_health: dict[str, float] = {}
        self._silent: set[str] = set()
        self.counts = {"adverts": 0, "beacon_frames": 0, "anonymous": 0}

    def status(self) -> dict[str, Any]:
        return {"scanner": self.scanner.status(), **self.counts,
                "registered_heard": len(self._last_heard), "silent": sorted(self._silent)}

    async def run(self) -> None:
        scan = asyncio.create_task(self.scanner.run(self.on_advert))
        try:
            while not scan.done():
                await asyncio.sleep(TICK_S)
                self.tick(self.now())
            scan.result()  # a replay that finished; a crash is re-raised to the supervisor
            self.tick(self.now())
        finally:
            scan.cancel()

    # --- adverts -----------------------------------------------------------------------

    def now(self) -> float:
        return self._capture_now if self.capture_time else self.clock()

    def on_advert(self, adv: Advert) -> None:
        if self.capture_time and adv.t is not None:
            if adv.t - self._capture_now >= TICK_S and self._capture_now:
                self.tick(adv.t)  # recorded time moves on: let exits and silence happen
            self._capture_now = max(self._capture_now, adv.t)
        now = self._capture_now if self.capture_time else self.clock()
        self.counts["adverts"] += 1
        beacon, key, role = self._identify(adv)
        if beacon is not None:
            self.counts["beacon_frames"] += 1
            if role == _REGISTERED:
                self._key_by_address[adv.address] = key
                self._registered_seen(now, key, adv, beacon)
                return
            if role == _APP and isinstance(beacon, IBeacon):
                self._presence(self.presence.sighting(now, key, adv.rssi, beacon.tx_power,
                                                      {"kind": "app"}))
                return
            if isinstance(beacon, EddystoneTLM):
                owner = self._key_by_address.get(adv.address)
                if owner is not None:
                    self._health(now, owner, beacon)
                    return
        self.counts["anonymous"] += 1
        summary = self.footfall.sighting(now, adv.address)
        if summary is not None:
            self.emit("o2o.ble.footfall", {**summary,
                                           "dwell_histogram": dict(self.footfall.dwell_histogram)})

    def _identify(self, adv: Advert) -> tuple[Beacon | None, str, str]:
        """(beacon frame or None, identity, role). A beacon repeats the same frame several
        times a second, so frames that do not change are decoded once and remembered."""
        frame = (tuple(adv.manufacturer_data.items()), tuple(adv.service_data.items()))
        known = self._identities.get(frame)
        if known is not None:
            return known
        beacon = decode_advert(adv.manufacturer_data, adv.service_data)
        if beacon is None:
            return None, "", ""
        key, role = beacon_key(beacon) or "", ""
        if key in self.registered:
            role = _REGISTERED
        elif isinstance(beacon, IBeacon) and beacon.uuid in self.app_uuids:
            key, role = f"app:{beacon.uuid}:{beacon.major}:{beacon.minor}", _APP
        if not isinstance(beacon, EddystoneTLM):  # telemetry changes with every frame
            if len(self._identities) >= IDENTITY_CACHE:
                self._identities.clear()
            self._identities[frame] = (beacon, key, role)
        return beacon, key, role

    def _registered_seen(self, now: float, key: str, adv: Advert, beacon: Beacon) -> None:
        self._last_heard[key] = now
        if key in self._silent:
            self._silent.discard(key)
            self.emit("o2o.ble.beacon.health", {"beacon": key, "status": "heard-again"})
        tx = getattr(beacon, "tx_power", -59)
        self._presence(self.presence.sighting(now, key, adv.rssi, tx, {"kind": "beacon"}))

    def _health(self, now: float, key: str, tlm: EddystoneTLM) -> None:
        self._last_heard[key] = now
        low = 0 < tlm.battery_mv < self.cfg.low_battery_mv
        due = now - self._last_health.get(key, -1e18) >= self.cfg.health_interval_s
        if due or (low and key not in self._last_health):
            self._last_health[key] = now
            self.emit("o2o.ble.beacon.health", {
                "beacon": key, "status": "low-battery" if low else "ok", **tlm.as_json(),
            })

    def _presence(self, events: Sequence[PresenceEvent]) -> None:
        for ev in events:  # usually none
            # "at": when it happened (the last sighting, for an exit), not when it was reported
            at = ev.time if self.capture_time else self.clock.to_wall(ev.time)
            self.emit("o2o.ble.presence", {"id": ev.key, "action": ev.kind,
                                           "at": round(at, 3), **ev.data})

    # --- time ----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        self._presence(self.presence.tick(now))
        self.footfall.close_visits(now)
        for key in self.registered:
            last = self._last_heard.get(key)
            if last is None or key in self._silent:
                continue
            if now - last > self.cfg.silent_after_s:
                self._silent.add(key)
                self.emit("o2o.ble.beacon.health", {
                    "beacon": key, "status": "silent", "silent_for_s": round(now - last, 1),
                })
