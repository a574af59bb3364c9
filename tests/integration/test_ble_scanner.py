"""The bleak scanner backend against the fake BlueZ, and the capture replay backend."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from drivers.ble.capture import Advert
from drivers.ble.decoders import decode_advert
from drivers.ble.models import EddystoneURL, IBeacon
from drivers.ble.scanner import BleakBeaconScanner, ReplayScanner, advert_line
from simulators.ble_frames import encode
from simulators.fake_bluez import FakeBlueZ, PrivateBus, wait_until

BEACON = IBeacon("b9407f30-f5f8-466e-aff9-25556b57fe6d", 3, 4, -59)


async def _advertise_until(fake: FakeBlueZ, heard: list[Advert], n: int) -> None:
    target = len(heard) + n
    for _ in range(2000):
        fake.advertise("C3:00:00:00:00:01", -61, *encode(BEACON))
        await asyncio.sleep(0.005)
        if len(heard) >= target:
            return
    raise AssertionError("adverts did not arrive")


def test_auto_mode_falls_back_to_active_and_survives_an_unplugged_adapter(
    bus: PrivateBus,
) -> None:
    async def main() -> tuple[BleakBeaconScanner, list[Advert], list[str]]:
        fake = FakeBlueZ(bus.address, passive=False)  # BlueZ without --experimental
        await fake.start()
        scanner = BleakBeaconScanner(mode="auto", watchdog_s=0.6, backoff_min_s=0.05,
                                     backoff_max_s=0.2)
        heard: list[Advert] = []
        task = asyncio.create_task(scanner.run(heard.append))
        await wait_until(lambda: fake.discovering, 10)
        await _advertise_until(fake, heard, 5)
        states = [scanner.status()["state"]]
        fake.remove_adapter()  # unplugged while scanning
        await wait_until(lambda: scanner.restarts >= 1, 10)
        states.append(scanner.status()["state"])
        fake.add_adapter()  # plugged back in
        await wait_until(lambda: fake.discovering, 10)
        await _advertise_until(fake, heard, 5)
        states.append(scanner.status()["state"])
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await fake.stop()
        return scanner, heard, states

    scanner, heard, states = asyncio.run(main())
    st = scanner.status()
    assert st["mode"] == "active"
    assert "passive scanning on Linux requires" in st["passive_unavailable"]
    assert states == ["scanning", "retrying", "scanning"]
    assert st["last_error"]
    assert {decode_advert(a.manufacturer_data, a.service_data) for a in heard} == {BEACON}
    assert all(a.address == "C3:00:00:00:00:01" and a.rssi == -61 for a in heard)


def test_scanner_survives_power_off_a_bluetoothd_restart_and_a_stuck_scan(
    bus: PrivateBus,
) -> None:
    async def main() -> tuple[BleakBeaconScanner, list[list[str]]]:
        fake = FakeBlueZ(bus.address)
        await fake.start()
        # BlueZ is asked every 0.2 s; silence counts after 3 s
        scanner = BleakBeaconScanner(mode="auto", watchdog_s=3, probe_s=0.2,
                                     backoff_min_s=0.05, backoff_max_s=0.2)
        heard: list[Advert] = []
        task = asyncio.create_task(scanner.run(heard.append))
        await wait_until(lambda: fake.monitoring, 10)
        await _advertise_until(fake, heard, 3)
        errors: list[list[str]] = []  # what the scanner said in each phase

        def phase() -> None:
            errors.append(list(scanner.recent_errors))
            scanner.recent_errors.clear()

        # staff switch Bluetooth off and on again
        fake.set_powered(False)
        await wait_until(lambda: scanner.restarts >= 1, 10)
        fake.set_powered(True)
        await _advertise_until(fake, heard, 3)
        phase()
        # bluetoothd restarts: org.bluez leaves the bus and comes back with a fresh state
        await fake.stop()
        restarts = scanner.restarts
        fake = FakeBlueZ(bus.address)
        await fake.start()
        await wait_until(lambda: scanner.restarts > restarts, 10)
        await _advertise_until(fake, heard, 3)
        phase()
        # the scan runs but nothing arrives although beacons are expected: the watchdog
        restarts = scanner.restarts
        await wait_until(lambda: scanner.restarts > restarts, 10)
        await _advertise_until(fake, heard, 3)
        phase()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await fake.stop()
        return scanner, errors

    scanner, errors = asyncio.run(main())
    assert scanner.status()["state"] == "scanning" and scanner.status()["mode"] == "passive"
    # the first thing said in each phase is the cause (retries may add "no powered adapter")
    assert "powered off" in errors[0][0], errors
    assert "bluetoothd was restarted" in errors[1][0] or "not running" in errors[1][0], errors
    assert "nothing heard for 3s" in errors[2][0], errors


def test_silence_is_fine_when_no_beacons_are_expected(bus: PrivateBus) -> None:
    async def main() -> BleakBeaconScanner:
        fake = FakeBlueZ(bus.address)
        await fake.start()
        scanner = BleakBeaconScanner(mode="active", watchdog_s=0.4, expect_adverts=False)
        task = asyncio.create_task(scanner.run(lambda adv: None))
        await wait_until(lambda: fake.discovering, 10)
        await asyncio.sleep(2.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await fake.stop()
        return scanner

    st = asyncio.run(main()).status()
    assert st["state"] == "scanning" and st["restarts"] == 0 and st["last_advert_s_ago"] is None


def test_no_bus_at_all_is_retried_not_fatal(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/nothing.sock")

    async def main() -> BleakBeaconScanner:
        scanner = BleakBeaconScanner(mode="active", backoff_min_s=0.01, backoff_max_s=0.05)
        task = asyncio.create_task(scanner.run(lambda a: None))
        await wait_until(lambda: scanner.restarts >= 3, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return scanner

    scanner = asyncio.run(main())
    assert scanner.status()["state"] == "retrying"
    assert scanner.status()["last_error"]


def test_replay_delivers_adverts_and_counts_bad_lines(tmp_path: Path) -> None:
    capture = tmp_path / "day.jsonl"
    lines = []
    for i in range(50):
        m, s = encode(EddystoneURL("https://shop.example.com/", -20) if i % 2 else BEACON)
        adv = Advert(i * 0.01, f"C3:00:00:00:00:{i % 3:02X}", -60, None, None, m, s, list(s))
        lines.append(advert_line(adv))
    lines.insert(10, "not json")
    lines.insert(20, json.dumps({"address": "x"}))
    capture.write_text("\n".join(lines) + "\n")

    got: list[Advert] = []
    scanner = ReplayScanner(capture, speed=0)
    asyncio.run(scanner.run(got.append))
    st = scanner.status()
    assert st["adverts"] == 50 and st["bad_lines"] == 2 and st["state"] == "finished"
    assert "day.jsonl:11" in st["last_error"] or "day.jsonl:21" in st["last_error"]
    kinds = [decode_advert(a.manufacturer_data, a.service_data) for a in got]
    assert kinds.count(BEACON) == 25


def test_replay_keeps_capture_timing(tmp_path: Path) -> None:
    capture = tmp_path / "timed.jsonl"
    m, s = encode(BEACON)
    capture.write_text("\n".join(
        advert_line(Advert(t, "C3:00:00:00:00:01", -60, None, None, m, s, []))
        for t in (100.0, 100.2, 100.4)) + "\n")
    stamps: list[float] = []
    loop_time: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await ReplayScanner(capture, speed=2.0).run(
            lambda a: (stamps.append(a.t or 0), loop_time.append(loop.time())))

    asyncio.run(main())
    assert stamps == [100.0, 100.2, 100.4]
    # 0.4 s of capture at double speed takes about 0.2 s
    assert 0.15 <= loop_time[-1] - loop_time[0] < 2.0


def test_cli_ble_record_then_decode(bus: PrivateBus, tmp_path: Path) -> None:
    """`o2o-edge ble record` against the fake BlueZ, then `decode ble` on what it wrote."""
    import os
    import subprocess
    import threading

    from tests.conftest import CLI, ROOT

    out = tmp_path / "rec.jsonl"
    loop = asyncio.new_event_loop()
    fake = FakeBlueZ(bus.address)
    ready = threading.Event()
    stop = threading.Event()

    def serve() -> None:
        async def main() -> None:
            await fake.start()
            ready.set()
            while not stop.is_set():
                fake.advertise("C3:00:00:00:00:07", -58, *encode(BEACON))
                await asyncio.sleep(0.02)
            await fake.stop()

        loop.run_until_complete(main())
        loop.close()

    t = threading.Thread(target=serve)
    t.start()
    try:
        assert ready.wait(10)
        res = subprocess.run([*CLI, "ble", "record", str(out), "--duration", "2",
                              "--mode", "passive"], capture_output=True, text=True, cwd=ROOT,
                             timeout=60, env=dict(os.environ))
    finally:
        stop.set()
        t.join(10)
    assert res.returncode == 0, res.stderr
    assert "recorded" in res.stderr
    lines = out.read_text().splitlines()
    assert len(lines) >= 5
    dec = subprocess.run([*CLI, "decode", "ble"], input=out.read_text(), capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    decoded = [json.loads(x) for x in dec.stdout.splitlines()]
    assert len(decoded) == len(lines)
    assert all(d == BEACON.as_json() for d in decoded)


def test_passive_mode_with_or_patterns(bus: PrivateBus) -> None:
    """Passive scanning through BlueZ's advertisement monitor: beacon frames and Apple's
    (for footfall) arrive, other devices' adverts are filtered out by BlueZ."""
    from drivers.ble.models import AltBeacon, EddystoneTLM

    tlm = EddystoneTLM(3000, 20.0, 5, 50.0)
    alt = AltBeacon("11" * 20, -60, 0, 0x0118)

    async def main() -> tuple[BleakBeaconScanner, list[Advert], list[bool]]:
        fake = FakeBlueZ(bus.address)
        await fake.start()
        scanner = BleakBeaconScanner(mode="auto", watchdog_s=30)
        heard: list[Advert] = []
        task = asyncio.create_task(scanner.run(heard.append))
        await wait_until(lambda: fake.monitoring, 10)
        delivered = []
        for _ in range(5):
            delivered.append(fake.advertise("C3:00:00:00:00:01", -60, *encode(BEACON)))
            delivered.append(fake.advertise("C3:00:00:00:00:02", -60, *encode(tlm)))
            delivered.append(fake.advertise("C3:00:00:00:00:04", -60, *encode(alt)))
            # an iPhone's "nearby" frame: under Apple's id, so it arrives (footfall)
            delivered.append(fake.advertise("5A:00:00:00:00:03", -60,
                                            {76: b"\x10\x05\x03\x1c\x0b\x1e\x0f"}, {}))
            # a device with other manufacturer data: no pattern matches, BlueZ drops it
            delivered.append(fake.advertise("5A:00:00:00:00:05", -60, {6: b"\x01\x09\x20"}, {}))
            await asyncio.sleep(0.02)
        await wait_until(lambda: len(heard) >= 20, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await fake.stop()
        return scanner, heard, delivered

    scanner, heard, delivered = asyncio.run(main())
    assert scanner.status()["mode"] == "passive"
    assert not scanner.status()["passive_unavailable"]
    assert delivered.count(False) == 5  # every frame of the other device filtered out
    assert {a.address for a in heard} == {"C3:00:00:00:00:01", "C3:00:00:00:00:02",
                                          "C3:00:00:00:00:04", "5A:00:00:00:00:03"}
    assert {decode_advert(a.manufacturer_data, a.service_data)
            for a in heard} == {BEACON, tlm, alt, None}
