"""The touchpoints (BLE presence, NFC taps, QR scans): made from the configuration, run under
the supervisor, and made again with new settings when a live configuration changes a section
they read.

The drivers are imported only for the touchpoints a store enables: bleak, nfcpy and the camera
stack cost start-up time and memory a store without them should not pay."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol

from agent.config import Config
from agent.outbox import Committed

Capture = Callable[[str, Any], "Future[list[Committed]]"]

# the sections each touchpoint reads: a live change to one restarts it (NFC judges its
# records with the QR policy)
SECTIONS_READ = {"ble": {"ble"}, "nfc": {"nfc", "qr"}, "qr": {"qr"}}


class Touchpoint(Protocol):
    async def run(self) -> None: ...

    # its section of the status document (agent/contracts/status.py BleStatus, NfcStatus,
    # QrStatus): typed by each source, read as its section by the status builder
    def status(self) -> Mapping[str, object]: ...


class Presence(Protocol):
    def forget(self, key: str) -> int: ...


class PresenceTouchpoint(Touchpoint, Protocol):
    @property
    def presence(self) -> Presence: ...


class Components(Protocol):
    """What of the supervisor the touchpoints need (agent/supervisor.py)."""

    def spawn(self, name: str, factory: Callable[[], Awaitable[None]]) -> None: ...

    async def stop(self, names: list[str] | None = None) -> None: ...

    def forget(self, name: str) -> None: ...


def make_ble(cfg: Config, capture: Capture) -> PresenceTouchpoint:
    from agent.presence.ble_source import BleSource  # only for a store with BLE: see above
    from drivers.ble.scanner import BeaconScanner, BleakBeaconScanner, ReplayScanner

    b = cfg.ble
    scanner: BeaconScanner
    if b.replay:
        scanner = ReplayScanner(Path(b.replay), speed=b.replay_speed)
    else:
        scanner = BleakBeaconScanner(adapter=b.adapter or None, mode=b.mode,  # type: ignore[arg-type]
                                     watchdog_s=b.watchdog_s, expect_adverts=bool(b.beacons))
    return BleSource(b, scanner, capture, capture_time=bool(b.replay))


def make_nfc(cfg: Config, capture: Capture) -> Touchpoint:
    from agent.nfc_source import NfcSource  # only for a store with NFC: see above
    from drivers.nfc.reader import NfcpyReader

    n = cfg.nfc
    reader = NfcpyReader(n.reader, targets=tuple(n.targets), debounce_s=n.debounce_s)
    return NfcSource(cfg, reader, capture)


def make_qr(cfg: Config, capture: Capture) -> Touchpoint:
    from agent.qr_source import QrSource  # only for a store with QR: see above

    return QrSource(cfg, capture)


class Builders:
    """How each touchpoint is made (tests give fakes)."""

    def __init__(self, ble: Callable[[Config, Capture], PresenceTouchpoint] = make_ble,
                 nfc: Callable[[Config, Capture], Touchpoint] = make_nfc,
                 qr: Callable[[Config, Capture], Touchpoint] = make_qr) -> None:
        self.ble, self.nfc, self.qr = ble, nfc, qr


class Touchpoints:
    def __init__(self, cfg: Config, capture: Capture, components: Components,
                 builders: Builders | None = None) -> None:
        self._capture = capture
        self._components = components
        self._builders = builders or Builders()
        self.ble: PresenceTouchpoint | None = None
        self._others: dict[str, Touchpoint] = {}
        for name in SECTIONS_READ:
            self._make(name, cfg)

    def _make(self, name: str, cfg: Config) -> Touchpoint | None:
        b = self._builders
        self._others.pop(name, None)
        if name == "ble":
            self.ble = b.ble(cfg, self._capture) if cfg.ble.enabled else None
            return self.ble
        made = None
        if name == "nfc" and cfg.nfc.enabled:
            made = b.nfc(cfg, self._capture)
        elif name == "qr" and cfg.qr.enabled:
            made = b.qr(cfg, self._capture)
        if made is not None:
            self._others[name] = made
        return made

    def running(self) -> dict[str, Touchpoint]:
        """The touchpoints made, by name, in the order of SECTIONS_READ."""
        made: dict[str, Touchpoint | None] = {"ble": self.ble, **self._others}
        return {n: t for n in SECTIONS_READ if (t := made.get(n)) is not None}

    def start(self) -> None:
        for name, touchpoint in self.running().items():
            self._components.spawn(name, touchpoint.run)

    async def reconfigure(self, cfg: Config, changed: set[str]) -> list[str]:
        """Make again, with cfg, each touchpoint that reads a changed section (stopped first,
        switched off if cfg disables it); the names restarted."""
        restarted = []
        for name, reads in SECTIONS_READ.items():
            if not changed & reads:
                continue
            await self._components.stop([name])
            self._components.forget(name)
            made = self._make(name, cfg)
            if made is not None:
                self._components.spawn(name, made.run)
            restarted.append(name)
        return restarted

    def status(self) -> dict[str, Mapping[str, object]]:
        return {name: t.status() for name, t in self.running().items()}

    def forget_presence(self, subject: str) -> int:
        """A data subject's presence track (its erasure), on the loop where it lives."""
        return self.ble.presence.forget(subject) if self.ble is not None else 0
