"""`o2o-edge ble record FILE` and `o2o-edge ble scan`: staff tools over the real scanner."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from typing import Any

from drivers.ble.capture import Advert
from drivers.ble.decoders import decode_advert
from drivers.ble.scanner import BleakBeaconScanner, advert_line


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


def _scanner(args: argparse.Namespace) -> BleakBeaconScanner:
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
