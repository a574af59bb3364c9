"""Beacon scanners: the `BeaconScanner` protocol, a bleak backend and a capture replay backend.

A scanner runs until cancelled and never gives up: an adapter that is missing, powered off,
unplugged or whose bluetoothd restarted is reported in `status()` and retried with backoff
and jitter. bleak raises plain OSError / ValueError as well as BleakError when there is no
bus or adapter, so all three are caught. A watchdog restarts scanning when nothing has been
heard for `watchdog_s` although beacons are expected (a stalled controller looks like that).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol

from drivers.ble.bluez_probe import BluezProbe
from drivers.ble.capture import Advert, parse_capture_line
from drivers.errors import DriverError
from drivers.retry import Backoff

AdvertCallback = Callable[[Advert], None]
Mode = Literal["auto", "active", "passive"]


class BeaconScanner(Protocol):
    async def run(self, on_advert: AdvertCallback) -> None: ...

    def status(self) -> dict[str, Any]: ...


class _ScanLost(Exception):
    """The scan runs no more or hears nothing although it should: restart it."""


def _passive_patterns() -> list[Any]:
    """BlueZ advertisement monitor patterns (ids little-endian as on air): anything under
    Apple's company id (iBeacon, and the "nearby" frames iPhones send, which anonymous
    footfall counts), AltBeacon's 0xBEAC code under any company id, and Eddystone's 16-bit
    service UUID. Phones that send none of these are only heard by an active scan."""
    from bleak.args.bluez import OrPattern
    from bleak.assigned_numbers import AdvertisementDataType as T

    return [OrPattern(0, T.MANUFACTURER_SPECIFIC_DATA, b"\x4c\x00"),
            OrPattern(2, T.MANUFACTURER_SPECIFIC_DATA, b"\xbe\xac"),
            OrPattern(0, T.SERVICE_DATA_UUID16, b"\xaa\xfe")]


STOP_TIMEOUT_S = 5.0


class BleakBeaconScanner:
    def __init__(
        self,
        adapter: str | None = None,
        mode: Mode = "auto",
        watchdog_s: float = 60.0,
        expect_adverts: bool = True,
        probe_s: float = 5.0,
        backoff_min_s: float = 1.0,
        backoff_max_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.adapter = adapter
        self.mode = mode
        self.watchdog_s = watchdog_s
        # silence restarts the scan only when something should be heard (the store's own
        # beacons); an empty shop at night is quiet for hours and that is fine
        self.expect_adverts = expect_adverts
        self.probe_s = probe_s
        self.clock = clock
        self._backoff = Backoff(backoff_min_s, backoff_max_s)
        self.state = "starting"
        self.mode_in_use = ""
        self.last_error = ""
        self.recent_errors: deque[str] = deque(maxlen=5)  # the cause is often not the last one
        self.restarts = 0
        self.adverts = 0
        self._last_advert = 0.0
        self._passive_refused = ""

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state, "mode": self.mode_in_use or self.mode,
            "passive_unavailable": self._passive_refused, "last_error": self.last_error,
            "recent_errors": list(self.recent_errors), "restarts": self.restarts,
            "adverts": self.adverts,
            "last_advert_s_ago": round(self.clock() - self._last_advert, 1)
            if self.adverts else None,
        }

    def _make(self, mode: str, callback: Any) -> Any:
        from bleak import BleakScanner

        bluez: dict[str, Any] = {}
        if self.adapter:
            bluez["adapter"] = self.adapter
        if mode == "passive":
            bluez["or_patterns"] = _passive_patterns()
        return BleakScanner(detection_callback=callback, scanning_mode=mode,  # type: ignore[arg-type]
                            bluez=bluez)  # type: ignore[arg-type]

    async def _start(self, callback: Any) -> Any:
        """Start in the configured mode; `auto` prefers passive and falls back to active."""
        from bleak.exc import BleakError

        modes = ["passive", "active"] if self.mode == "auto" else [self.mode]
        if self.mode == "auto" and self._passive_refused:
            modes = ["active"]
        refused = ""
        for mode in modes:
            scanner = self._make(mode, callback)
            try:
                await scanner.start()
            except (BleakError, OSError, ValueError) as exc:
                if mode == "passive" and self.mode == "auto":
                    refused = f"{type(exc).__name__}: {exc}"
                    continue
                raise  # active failed too: the adapter or BlueZ, not passive scanning
            if refused:
                self._passive_refused = refused  # remembered: this BlueZ cannot scan passively
            self.mode_in_use = mode
            return scanner
        raise RuntimeError("no scanning mode could be started")  # pragma: no cover

    async def run(self, on_advert: AdvertCallback) -> None:

        probe = BluezProbe(self.adapter)

        def callback(device: Any, adv: Any) -> None:
            self.adverts += 1
            self._last_advert = self.clock()
            # bleak builds fresh dicts for every advert, so they are handed on without a copy
            service_data = adv.service_data
            if service_data:
                service_data = {k.lower(): v for k, v in service_data.items()}
            on_advert(Advert(
                time.time(), device.address, adv.rssi, adv.tx_power, adv.local_name,
                adv.manufacturer_data, service_data, adv.service_uuids,
            ))

        try:
            await self._scan_forever(callback, probe)
        finally:
            probe.close()

    def _failed(self, why: str) -> None:
        self.last_error = why
        self.recent_errors.append(why)
        self.state = "retrying"
        self.restarts += 1

    async def _scan_forever(self, callback: Any, probe: BluezProbe) -> None:
        from bleak.exc import BleakError

        while True:
            scanner = None
            try:
                scanner = await self._start(callback)
                owner = await probe.owner()
                self.state = "scanning"
                self._last_advert = self.clock()
                started = probed = self.clock()
                while True:
                    await asyncio.sleep(min(1.0, self.watchdog_s / 4, self.probe_s))
                    now = self.clock()
                    if self.expect_adverts and now - self._last_advert > self.watchdog_s:
                        raise _ScanLost(
                            f"nothing heard for {self.watchdog_s:.0f}s; restarting the scan")
                    if now - probed >= self.probe_s:
                        probed = now
                        problem = await probe.problem(owner, self.mode_in_use == "active")
                        if problem:
                            raise _ScanLost(f"{problem}; restarting the scan")
                    if now - started > self.watchdog_s:
                        self._backoff.reset()  # a scan that works this long is healthy
            except _ScanLost as exc:
                self._failed(str(exc))
            except (BleakError, OSError, ValueError) as exc:
                self._failed(f"{type(exc).__name__}: {exc}")
            finally:
                if scanner is not None:
                    # a BlueZ that has gone away may never answer: do not wait for it forever
                    with contextlib.suppress(BleakError, OSError, ValueError, AttributeError,
                                             TimeoutError):
                        await asyncio.wait_for(scanner.stop(), STOP_TIMEOUT_S)
            await asyncio.sleep(self._backoff.next_delay())


class ReplayScanner:
    """Adverts from a capture file, at real time (`speed=1`), faster, or as fast as possible
    (`speed=0`). Bad lines are counted and skipped."""

    def __init__(self, path: Path, speed: float = 1.0, loop_forever: bool = False) -> None:
        self.path = path
        self.speed = speed
        self.loop_forever = loop_forever
        self.adverts = 0
        self.bad_lines = 0
        self.last_error = ""
        self.state = "starting"

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "mode": "replay", "file": str(self.path),
                "adverts": self.adverts, "bad_lines": self.bad_lines,
                "last_error": self.last_error}

    async def run(self, on_advert: AdvertCallback) -> None:
        while True:
            self.state = "replaying"
            first_t: float | None = None
            started = time.monotonic()
            with self.path.open(encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        adv = parse_capture_line(line)
                    except DriverError as exc:
                        self.bad_lines += 1
                        self.last_error = f"{self.path}:{lineno}: {exc}"
                        continue
                    if self.speed > 0 and adv.t is not None:
                        first_t = adv.t if first_t is None else first_t
                        due = started + (adv.t - first_t) / self.speed
                        delay = due - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    self.adverts += 1
                    on_advert(adv)
                    if self.adverts % 1000 == 0:
                        await asyncio.sleep(0)  # let the loop breathe at full speed
            if not self.loop_forever:
                self.state = "finished"
                return


def advert_line(adv: Advert) -> str:
    """One capture line for `ble record`."""
    return json.dumps(adv.as_json(), separators=(",", ":"))


__all__ = ["BeaconScanner", "BleakBeaconScanner", "ReplayScanner",
           "advert_line"]
