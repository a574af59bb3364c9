"""BLE decode throughput against the ibeacon-ble parser, measured in the same run.

    python3 dev.py bench-ble [--adverts N]

Both sides get their input prepared outside the clock (bleak-shaped dicts for ours, Home
Assistant BluetoothServiceInfo objects for ibeacon-ble) and decode the same iBeacon frames.
Goal: ours >= 1.0x. Also reported: our throughput on a mixed store (all frame kinds and
non-beacon adverts), which ibeacon-ble does not decode. And the thread hand-offs of one
advert on its way from bleak's callback to the broker's socket (tests/bench/ble_handoffs.py;
goal: at most two).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from typing import Any

from drivers.ble.decoders import decode_advert
from drivers.ble.models import (
    AltBeacon,
    EddystoneEID,
    EddystoneTLM,
    EddystoneUID,
    EddystoneURL,
    IBeacon,
)
from simulators.ble_frames import encode
from tests.bench.ble_cpu import cpu_share


def _ibeacons(n: int, rng: random.Random) -> list[tuple[dict[int, bytes], dict[str, bytes]]]:
    uuids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(20)]
    return [encode(IBeacon(rng.choice(uuids), rng.randrange(65536), rng.randrange(65536),
                           rng.randrange(-90, -40))) for _ in range(n)]


def _mixed(n: int, rng: random.Random) -> list[tuple[dict[int, bytes], dict[str, bytes]]]:
    kinds = [
        lambda: IBeacon(str(uuid.UUID(int=rng.getrandbits(128))), 1, 2, -59),
        lambda: AltBeacon(rng.randbytes(20).hex(), -59, 0, 0x118),
        lambda: EddystoneUID(rng.randbytes(10).hex(), rng.randbytes(6).hex(), -20),
        lambda: EddystoneURL("https://shop.example.com/x", -20),
        lambda: EddystoneTLM(3000, 21.5, rng.randrange(2**32), 1234.5),
        lambda: EddystoneEID(rng.randbytes(8).hex(), -20),
    ]
    out = []
    for _ in range(n):
        if rng.random() < 0.4:  # phones and headphones: not beacons
            out.append(({76: b"\x10\x05\x03\x1c\x0b\x1e\x0f"}, {}))
        else:
            out.append(encode(rng.choice(kinds)()))
    return out


def _pipeline(n: int, rng: random.Random) -> dict[str, Any]:
    """Decode + filter + presence + footfall, as the agent runs them, on one core."""
    from agent.config import BleConfig
    from agent.presence.ble_source import BleSource
    from simulators.floor import FixedBeacon, StoreFloor, Walker

    class _Idle:
        def status(self) -> dict[str, Any]:
            return {}

        async def run(self, on_advert: Any) -> None:
            return None

    t0 = 1_795_600_000.0
    app = "2f234454-cf6d-4a0f-adf2-f4911ba9ffa6"
    walkers = [Walker(f"w{i}", [(t0, 8, 0), (t0 + 3600, rng.uniform(-4, 4), 3), (t0 + 7200, 8, 0)],
                      app=IBeacon(app, i, i, -59) if i < 30 else None, seed=i)
               for i in range(80)]
    beacons = [FixedBeacon(f"b{i}", f"C3:00:00:00:00:{i:02X}",
                           EddystoneUID("edd1ebeac04e5defa017", f"{i:012x}", -20), i, 2)
               for i in range(5)]
    floor = StoreFloor(beacons=beacons, walkers=walkers)
    adverts = []
    for adv in floor.adverts(t0, t0 + 7200):
        adverts.append(adv)
        if len(adverts) >= n:
            break
    cfg = BleConfig(enabled=True, app_uuids=[app],
                    beacons=[f"eddystone-uid:edd1ebeac04e5defa017:{i:012x}" for i in range(5)])
    events: list[Any] = []
    src = BleSource(cfg, _Idle(), lambda t, d: events.append(t), capture_time=True)
    t = time.perf_counter()
    for adv in adverts:
        src.on_advert(adv)
    rate = len(adverts) / (time.perf_counter() - t)
    return {"adverts_s": round(rate), "adverts": len(adverts), "events": len(events),
            "goal": ">= 100000"}


def _rate(fn: Any, items: list[Any], repeat: int = 5) -> float:
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        for item in items:
            fn(item)
        best = max(best, len(items) / (time.perf_counter() - t0))
    return best


def _handoffs() -> dict[str, Any]:
    from simulators.brokers import BrokerUnavailable
    from simulators.fake_bluez import BusUnavailable
    from tests.bench.ble_handoffs import measure

    try:
        return measure()
    except (BrokerUnavailable, BusUnavailable) as exc:
        print(f"thread hand-offs not measured: {exc}", file=sys.stderr)
        return {"skipped": str(exc)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--adverts", type=int, default=100_000)
    ap.add_argument("--cpu-rate", type=int, default=2000, help="adverts/s for the CPU share")
    ap.add_argument("--cpu-seconds", type=float, default=20.0,
                    help="seconds of load for the CPU share (0 skips it)")
    ap.add_argument("--cpu-rounds", type=int, default=3,
                    help="rounds of agent and bare bleak, interleaved, for the CPU share")
    ap.add_argument("--no-handoffs", action="store_true",
                    help="skip following one advert to the broker (needs mosquitto, dbus)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    rng = random.Random(7)
    frames = _ibeacons(args.adverts, rng)
    ours = _rate(lambda f: decode_advert(f[0], f[1]), frames)
    results: dict[str, Any] = {"ibeacon": {"ours_adverts_s": round(ours)}}
    try:
        from home_assistant_bluetooth import BluetoothServiceInfo
        from ibeacon_ble import iBeaconParser
    except ImportError as exc:
        print(f"ibeacon-ble not installed ({exc}); pip install ibeacon-ble for the baseline",
              file=sys.stderr)
    else:
        parser = iBeaconParser()
        asyncio.run(parser.async_setup())
        infos = [BluetoothServiceInfo(name="beacon", address=f"C3:00:00:00:{i % 256:02X}:01",
                                      rssi=-60, manufacturer_data=m, service_data=s,
                                      service_uuids=[], source="bench")
                 for i, (m, s) in enumerate(frames)]
        theirs = _rate(parser.parse, infos)
        results["ibeacon"].update({"ibeacon_ble_adverts_s": round(theirs),
                                   "ratio": round(ours / theirs, 2), "goal": ">= 1.0"})
    results["pipeline"] = _pipeline(args.adverts, rng)
    if args.cpu_seconds > 0:
        results["cpu"] = cpu_share(args.cpu_rate, args.cpu_seconds, args.cpu_rounds)
    if not args.no_handoffs:
        results["handoffs"] = _handoffs()
    mixed = _mixed(args.adverts, rng)
    results["mixed_store"] = {"ours_adverts_s": round(_rate(lambda f: decode_advert(f[0], f[1]),
                                                            mixed))}
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
