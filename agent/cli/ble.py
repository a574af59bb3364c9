"""`o2o-edge ble record FILE` and `o2o-edge ble scan`: staff tools over the real scanner."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from typing import Any, Final

from drivers.ble.capture import Advert
from drivers.ble.decoders import decode_advert
from drivers.ble.scanner import BleakBeaconScanner, advert_line
from drivers.errors import DriverError, DriverReason


async def _run_for(scanner: BleakBeaconScanner, on_advert: Any, duration: float,
                   tick: Any = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(scanner.run(on_advert))
    end = time.monotonic() + duration if duration > 0 else float("inf")
    try:
        while not stop.is_set() and time.monotonic() < end:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if tick is not None:
                tick()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


SYSTEM_BUS_SOCKET: Final = "/run/dbus/system_bus_socket"  # where Debian's dbus listens


def _bluez_problem(adapter: str | None) -> str:
    """Why a scan cannot start here, with what to install or start ("" when it can): asked of
    BlueZ first, so a machine without it gets one line instead of the scanner retrying with a
    bare FileNotFoundError."""
    from drivers.ble.bluez_probe import BluezProbe

    async def ask() -> str:
        probe = BluezProbe(adapter)
        try:
            owner = await probe.owner()
            if not owner:
                if "DBUS_SYSTEM_BUS_ADDRESS" not in os.environ and \
                        not os.path.exists(SYSTEM_BUS_SOCKET):
                    return ("the system D-Bus is not reachable (no " + SYSTEM_BUS_SOCKET
                            + "): install and start it (apt-get install dbus; systemctl "
                              "start dbus), then BlueZ (apt-get install bluez; systemctl "
                              "enable --now bluetooth)")
                return ("BlueZ (bluetoothd) is not running on the system D-Bus: apt-get "
                        "install bluez, then systemctl enable --now bluetooth")
            problem = await probe.problem(owner, active=False)
            return f"{problem}: check the adapter (bluetoothctl list; rfkill)" if problem else ""
        finally:
            probe.close()

    return asyncio.run(ask())


def _scanner(args: argparse.Namespace) -> BleakBeaconScanner:
    from agent.errors import ConfigError

    if not 0 < args.watchdog <= 86400 or not 0 <= args.duration <= 1e9:  # also refuses nan
        raise ConfigError("--watchdog: more than 0 and at most 86400 seconds; --duration: "
                          "0 (until Ctrl-C) or more seconds")
    if args.adapter is not None and not re.fullmatch(r"hci[0-9]{1,3}", args.adapter):
        raise ConfigError(f"--adapter {args.adapter!r}: an adapter name like hci0")
    problem = _bluez_problem(args.adapter)
    if problem:
        raise DriverError(DriverReason.BACKEND, f"cannot scan: {problem}")
    return BleakBeaconScanner(adapter=args.adapter, mode=args.mode, watchdog_s=args.watchdog)


def cmd_ble_record(args: argparse.Namespace) -> int:
    scanner = _scanner(args)
    count = 0
    with open(args.file, "a", encoding="utf-8") as out:
        def on_advert(adv: Advert) -> None:
            nonlocal count
            out.write(advert_line(adv) + "\n")
            count += 1

        def tick() -> None:
            out.flush()
            st = scanner.status()
            print(f"\r{count} adverts  [{st['state']}, {st['mode']}]"
                  + (f"  {st['last_error']}" if st["state"] != "scanning" else ""),
                  end="", file=sys.stderr, flush=True)

        asyncio.run(_run_for(scanner, on_advert, args.duration, tick))
    print(f"\nrecorded {count} adverts to {args.file}", file=sys.stderr)
    return 0


def _summary(adv: Advert) -> str:
    beacon = decode_advert(adv.manufacturer_data, adv.service_data)
    if beacon is None:
        return "-"
    j = beacon.as_json()
    kind = str(j.pop("kind"))
    return kind + " " + " ".join(f"{k}={v}" for k, v in j.items())


FORGET_S = 60.0


def cmd_ble_scan(args: argparse.Namespace) -> int:
    if not 0 < args.rows <= 10000:
        print("o2o-edge ble: --rows: 1 to 10000", file=sys.stderr)
        return 2
    scanner = _scanner(args)
    table: dict[str, tuple[int, float, str]] = {}

    def on_advert(adv: Advert) -> None:
        table[adv.address] = (adv.rssi, time.monotonic(), _summary(adv))

    def tick() -> None:
        st = scanner.status()
        now = time.monotonic()
        for address in [a for a, (_, seen, _) in table.items() if now - seen > FORGET_S]:
            del table[address]  # gone (or a phone that changed its address)
        lines = [f"{len(table)} devices  scanner: {st['state']} ({st['mode']})"
                 + (f"  last error: {st['last_error']}" if st["last_error"] else "")]
        rows = sorted(table.items(), key=lambda kv: -kv[1][0])[: args.rows]
        for address, (rssi, seen, summary) in rows:
            lines.append(f"  {address:<18} {rssi:>4} dBm  {now - seen:>4.0f}s ago  {summary}")
        print("\n".join(lines) + "\n", flush=True)

    asyncio.run(_run_for(scanner, on_advert, args.duration, tick))
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("ble", help="BLE tools for staff: record adverts, show what is heard")
    bsub = p.add_subparsers(dest="ble_command", metavar="ACTION", required=True)
    for name, handler, text in (
        ("record", cmd_ble_record, "append live adverts to FILE as capture lines"),
        ("scan", cmd_ble_scan, "print a table of what is heard, every second (devices "
                               "unheard for a minute drop off)"),
    ):
        q = bsub.add_parser(name, help=text)
        if name == "record":
            q.add_argument("file", help="capture file (JSON lines) to append to")
        else:
            q.add_argument("--rows", type=int, default=30, help="devices shown (default 30)")
        q.add_argument("--duration", type=float, default=0.0,
                       help="seconds to run (default: until Ctrl-C)")
        q.add_argument("--adapter", help="adapter name, e.g. hci1 (default: the first one)")
        q.add_argument("--mode", choices=["auto", "active", "passive"], default="auto",
                       help="auto prefers passive scanning when BlueZ supports it")
        q.add_argument("--watchdog", type=float, default=60.0,
                       help="restart the scan after this many silent seconds")
        q.set_defaults(handler=handler)
