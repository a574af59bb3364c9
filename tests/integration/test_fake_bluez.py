"""Unmodified bleak against the fake BlueZ on a private D-Bus daemon."""

from __future__ import annotations

import asyncio

import pytest

from drivers.ble.decoders import decode_advert
from drivers.ble.models import EddystoneTLM, IBeacon
from simulators.ble_frames import encode
from simulators.fake_bluez import FakeBlueZ, PrivateBus, wait_until


def test_bleak_active_scan_hears_the_fake_beacons(bus: PrivateBus) -> None:
    from bleak import BleakScanner

    beacons = {
        "C3:00:00:00:00:01": IBeacon("b9407f30-f5f8-466e-aff9-25556b57fe6d", 7, 9, -59),
        "C3:00:00:00:00:02": EddystoneTLM(2950, 21.5, 1000, 360.0),
    }

    async def main() -> dict[str, list[object]]:
        fake = FakeBlueZ(bus.address)
        await fake.start()
        heard: dict[str, list[object]] = {}

        def on_advert(device: object, adv: object) -> None:
            beacon = decode_advert(adv.manufacturer_data, adv.service_data)  # type: ignore[attr-defined]
            heard.setdefault(device.address, []).append((adv.rssi, beacon))  # type: ignore[attr-defined]

        scanner = BleakScanner(detection_callback=on_advert)
        assert not fake.advertise("C3:00:00:00:00:01", -60, *encode(beacons["C3:00:00:00:00:01"]))
        await scanner.start()
        await wait_until(lambda: fake.discovering)
        for i in range(10):
            for address, beacon in beacons.items():
                assert fake.advertise(address, -60 - i, *encode(beacon))
            await asyncio.sleep(0.01)
        await wait_until(lambda: sum(len(v) for v in heard.values()) >= 20)
        await scanner.stop()
        assert not fake.discovering
        await fake.stop()
        return heard

    heard = asyncio.run(main())
    for address, beacon in beacons.items():
        assert {b for _, b in heard[address]} == {beacon}
        assert [r for r, _ in heard[address]][-1] == -69


def test_adapter_unplugged_powered_off_and_back(bus: PrivateBus) -> None:
    from bleak import BleakScanner
    from bleak.exc import BleakError

    async def main() -> list[str]:
        fake = FakeBlueZ(bus.address)
        await fake.start()
        seen: list[str] = []
        fake.remove_adapter()
        with pytest.raises(BleakError, match=r"[Nn]o Bluetooth adapters"):
            await BleakScanner(detection_callback=lambda d, a: None).start()
        fake.add_adapter()
        fake.set_powered(False)
        await asyncio.sleep(0.1)  # let bleak's manager see the signals
        with pytest.raises(BleakError, match=r"[Nn]o powered"):
            await BleakScanner(detection_callback=lambda d, a: None).start()
        fake.set_powered(True)
        await asyncio.sleep(0.1)
        scanner = BleakScanner(detection_callback=lambda d, a: seen.append(d.address))
        await scanner.start()
        await wait_until(lambda: fake.discovering)
        fake.advertise("C3:00:00:00:00:09", -50, *encode(IBeacon("00" * 4 + "-0000-0000-0000-"
                                                                 + "00" * 6, 1, 1, -59)))
        await wait_until(lambda: bool(seen))
        await scanner.stop()
        await fake.stop()
        return seen

    assert asyncio.run(main()) == ["C3:00:00:00:00:09"]
