"""Long store days made up from a seed, for soaks: every store hour has its shoppers (some
with the app), taps on the shelf tags and a loyalty card, product and hostile codes, two
pickups (one typed, one shown) with surveys, and — every few hours — the broker going down
or the network being cut. Codes and orders are new each hour, so nothing is a repeat."""

from __future__ import annotations

import random

from simulators.scenario.model import (
    APP_UUID,
    NAMESPACE,
    Beacon,
    Checkin,
    Fault,
    Order,
    Scan,
    Scenario,
    Shopper,
    Tag,
    Tap,
)

_CODE_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def store_day(hours: float, speed: float, seed: int = 1, faults: bool = True) -> Scenario:
    rng = random.Random(seed)  # noqa: S311 - simulation, reproducible by seed
    sc = Scenario(store="store-1", device="pi-soak", opens_h=0.0, hours=hours, speed=speed,
                  app_uuid=APP_UUID)
    sc.beacons = [Beacon("door", NAMESPACE, "000000000001", 1.0, 0.5, (3000, 2950)),
                  Beacon("aisle", NAMESPACE, "000000000002", 4.0, 2.0, (2900, 2700)),
                  Beacon("till", NAMESPACE, "000000000003", 2.0, 6.0, (3000, 2980))]
    sc.tags = {"shelf-a": Tag("shelf-a", "ntag213", "04a1b2c3d4e5f6",
                              "https://shop.example/p/autumn-coffee"),
               "shelf-b": Tag("shelf-b", "type4a", "04a1b2c3d4e5f7",
                              "https://shop.example/p/green-tea"),
               "card": Tag("card", "felica", "02fe0000000000aa", role="loyalty")}
    n_hours = int(hours)
    for h in range(n_hours):
        base = h * 3600.0
        for k in range(3):
            at = base + rng.uniform(0, 3000)
            sc.shoppers.append(Shopper(at, ("door", "aisle", "till"), rng.uniform(10, 30),
                                       app=100 + h * 3 + k if k == 0 else 0))
        for minute, tag in ((5, "shelf-a"), (20, "card"), (50, "shelf-b")):
            sc.taps.append(Tap(base + minute * 60, tag))
        sc.scans.append(Scan(base + 10 * 60, text=f"https://shop.example/p/item-{h}"
                             f"?utm_campaign=hour-{h}", expect="product"))
        sc.scans.append(Scan(base + 40 * 60, text=f"javascript:alert({h})", expect="rejected"))
        for minute, via in ((15, "code"), (35, "qr")):
            oid = f"S-{h:04d}-{minute}"
            code = "".join(rng.choice(_CODE_CHARS) for _ in range(6))
            sc.orders[oid] = Order(oid, code, "Sam")
            sc.checkins.append(Checkin(base + minute * 60, oid, via, rng.choice([0, 3, 4, 5])))
        if faults and h % 3 == 1:
            kind = "broker-down" if h % 6 == 1 else "network-cut"
            sc.faults.append(Fault(base + 20 * 60, kind, 25.0))
    sc.in_time_order()
    return sc
