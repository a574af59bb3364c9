"""The touchpoints: made for the sections enabled, restarted when a live change touches a
section they read, switched off when it disables them; a subject's presence forgotten."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from agent.config import BleConfig, Config, NfcConfig, QrConfig
from agent.services.touchpoints import Builders, Capture, Touchpoints
from tests.unit.runtime.fakes import FakeComponents, Recorder


class FakePresence:
    def __init__(self) -> None:
        self.tracks = {"app-1": 1}

    def forget(self, key: str) -> int:
        return self.tracks.pop(key, 0)


class FakeTouchpoint:
    def __init__(self, kind: str, cfg: Config) -> None:
        self.kind, self.cfg = kind, cfg
        self.presence = FakePresence()

    async def run(self) -> None:
        await asyncio.Event().wait()

    def status(self) -> dict[str, Any]:
        return {"kind": self.kind}


def builders(made: list[tuple[str, Config]]) -> Builders:
    def make(kind: str) -> Any:
        def build(cfg: Config, capture: Capture) -> FakeTouchpoint:
            made.append((kind, cfg))
            return FakeTouchpoint(kind, cfg)
        return build
    return Builders(ble=make("ble"), nfc=make("nfc"), qr=make("qr"))


def config(ble: bool = False, nfc: bool = False, qr: bool = False) -> Config:
    return Config(ble=BleConfig(enabled=ble), nfc=NfcConfig(enabled=nfc),
                  qr=QrConfig(enabled=qr))


def test_only_the_enabled_touchpoints_are_made_and_started() -> None:
    made: list[tuple[str, Config]] = []

    async def main() -> tuple[FakeComponents, Touchpoints]:
        components = FakeComponents()
        tps = Touchpoints(config(ble=True, qr=True), Recorder(), components, builders(made))
        tps.start()
        await components.stop()
        return components, tps

    components, tps = asyncio.run(main())
    assert [k for k, _ in made] == ["ble", "qr"]
    assert components.spawned == ["ble", "qr"]
    assert tps.status() == {"ble": {"kind": "ble"}, "qr": {"kind": "qr"}}


def test_a_live_change_restarts_the_touchpoints_that_read_it_with_the_new_settings() -> None:
    made: list[tuple[str, Config]] = []

    async def main() -> tuple[FakeComponents, Touchpoints, list[str]]:
        components = FakeComponents()
        old = config(ble=True, nfc=True, qr=True)
        tps = Touchpoints(old, Recorder(), components, builders(made))
        tps.start()
        new = dataclasses.replace(old, qr=QrConfig(enabled=True, camera="/dev/video2"))
        restarted = await tps.reconfigure(new, {"qr"})
        await components.stop()
        return components, tps, restarted

    components, tps, restarted = asyncio.run(main())
    assert restarted == ["nfc", "qr"]  # NFC judges its records with the QR policy
    assert components.forgotten == ["nfc", "qr"]
    assert components.spawned == ["ble", "nfc", "qr", "nfc", "qr"]
    assert [(k, c.qr.camera) for k, c in made[3:]] == [("nfc", "/dev/video2"),
                                                      ("qr", "/dev/video2")]
    assert set(tps.status()) == {"ble", "nfc", "qr"}


def test_a_touchpoint_switched_off_live_is_stopped_and_not_made_again() -> None:
    made: list[tuple[str, Config]] = []

    async def main() -> tuple[FakeComponents, Touchpoints]:
        components = FakeComponents()
        tps = Touchpoints(config(ble=True), Recorder(), components, builders(made))
        tps.start()
        assert tps.forget_presence("app-1") == 1
        await tps.reconfigure(config(ble=False), {"ble"})
        await components.stop()
        return components, tps

    components, tps = asyncio.run(main())
    assert components.stopped[0] == "ble" and components.spawned == ["ble"]
    assert tps.status() == {} and tps.ble is None
    assert tps.forget_presence("app-1") == 0  # no BLE: no track to forget
