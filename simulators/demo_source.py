"""A simulated store floor emitting plausible touchpoint events, until the real simulators
(beacons, tags, camera) take over the demo."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

_PRODUCTS = ["sku-1001", "sku-1002", "sku-2040", "sku-3300", "sku-4711"]
_CAMPAIGNS = ["winter-sale", "app-launch", "loyalty-x2"]
_ZONES = ["entrance", "shoes", "outdoor", "checkout"]


def _random_event(rng: random.Random, n: int) -> tuple[str, dict[str, Any]]:
    roll = rng.random()
    if roll < 0.35:
        return "o2o.ble.presence", {
            "zone": rng.choice(_ZONES), "visitors": rng.randint(0, 25), "window_s": 60,
        }
    if roll < 0.55:
        return "o2o.nfc.tap", {
            "tag": f"shelf-{rng.randint(1, 40):03d}", "product": rng.choice(_PRODUCTS),
        }
    if roll < 0.75:
        return "o2o.qr.scan", {"class": "campaign", "campaign": rng.choice(_CAMPAIGNS)}
    if roll < 0.85:
        return "o2o.kiosk.checkin", {"kind": "pickup", "order": f"ORD-{10000 + n}"}
    return "o2o.ble.tlm", {
        "beacon": f"beacon-{rng.randint(1, 8)}", "battery_mv": rng.randint(2600, 3100),
        "temperature_c": round(rng.uniform(18, 24), 1),
    }


async def simulated_store(
    capture: Callable[[str, Any], Any], rate: float = 20.0, seed: int | None = None,
    limit: int | None = None,
) -> None:
    """Emit `rate` events per second through `capture` (until `limit` events, if given)."""
    rng = random.Random(seed)  # noqa: S311 - simulation, not security
    n = 0
    while limit is None or n < limit:
        event_type, data = _random_event(rng, n)
        capture(event_type, data)
        n += 1
        await asyncio.sleep(rng.expovariate(rate))
