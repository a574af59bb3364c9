"""Presence from the store floor model, against its ground truth; a whole day, no addresses."""

from __future__ import annotations

import json
import random
from typing import Any

from agent.config import BleConfig
from agent.presence.ble_source import BleSource
from drivers.ble.models import EddystoneUID, IBeacon
from simulators.floor import FixedBeacon, StoreFloor, Walker

APP_UUID = "2f234454-cf6d-4a0f-adf2-f4911ba9ffa6"
DOOR = EddystoneUID("edd1ebeac04e5defa017", "000000000001", -20)


class _NoScanner:
    def status(self) -> dict[str, Any]:
        return {"state": "test"}

    async def run(self, on_advert: Any) -> None:  # pragma: no cover - not used
        return None


def _run(floor: StoreFloor, t0: float, t1: float) -> tuple[list[tuple[str, Any]], BleSource]:
    events: list[tuple[str, Any]] = []
    cfg = BleConfig(enabled=True, beacons=[f"eddystone-uid:{DOOR.namespace}:{DOOR.instance}"],
                    app_uuids=[APP_UUID], silent_after_s=60)
    src = BleSource(cfg, _NoScanner(), lambda t, d: events.append((t, d)), capture_time=True)
    for adv in floor.adverts(t0, t1):
        src.on_advert(adv)
    src.tick(t1 + 600)  # the recording ends: everyone still present leaves
    return events, src


def _shopper(i: int, rng: random.Random, t0: float) -> Walker:
    enter = t0 + rng.uniform(0, 3000)
    stay = rng.uniform(60, 900)
    # in through the door (8 m away), around the shelves, out again
    path = [(enter, 8.0, 0.0), (enter + stay * 0.3, rng.uniform(-4, 4), rng.uniform(1, 5)),
            (enter + stay * 0.7, rng.uniform(-4, 4), rng.uniform(1, 5)),
            (enter + stay, 8.0, 0.0)]
    return Walker(f"shopper-{i}", path, app=IBeacon(APP_UUID, 100 + i, i, -59), seed=i)


def test_enter_and_exit_times_follow_the_ground_truth() -> None:
    rng = random.Random(11)
    t0 = 1_795_500_000.0
    floor = StoreFloor(beacons=[FixedBeacon("door", "C3:00:00:00:00:02", DOOR, 6.0, 0.0)],
                       walkers=[_shopper(i, rng, t0) for i in range(20)], drop_rate=0.15)
    events, _ = _run(floor, t0, t0 + 4000)
    truth = floor.truth()
    got: dict[str, dict[str, float]] = {}
    for etype, d in events:
        if etype == "o2o.ble.presence" and d["id"].startswith("app:") and d["action"] != "zone":
            assert d["action"] not in got.get(d["id"], {}), "one enter and one exit per visit"
            got.setdefault(d["id"], {})[d["action"]] = d["at"]
    assert set(got) == set(truth), "every shopper is seen entering and leaving"
    enter_err = [got[k]["enter"] - truth[k][0] for k in truth]
    exit_err = [truth[k][1] - got[k]["exit"] for k in truth]
    print(f"\n{len(truth)} shoppers, 15% packet loss, 1 s advertising: enter detected "
          f"{sum(enter_err) / len(enter_err):.2f}s late on average (max {max(enter_err):.2f}s), "
          f"last sighting {sum(exit_err) / len(exit_err):.2f}s before leaving "
          f"(max {max(exit_err):.2f}s)")
    # detection can only lag the truth, and by about one advertising interval plus losses
    assert all(0 <= e < 5 for e in enter_err) and all(0 <= e < 5 for e in exit_err)


def test_a_whole_day_leaves_no_address_in_any_event() -> None:
    rng = random.Random(3)
    t0 = 1_795_500_000.0
    walkers = [_shopper(i, rng, t0) for i in range(10)]
    for i in range(40):  # anonymous phones, addresses rotating every 15 minutes
        enter = t0 + rng.uniform(0, 8 * 3600)
        walkers.append(Walker(f"phone-{i}", [(enter, 8.0, 0.0), (enter + rng.uniform(60, 3600),
                                                                    1.0, 2.0)],
                              interval_s=5.0, seed=i))
    floor = StoreFloor(beacons=[FixedBeacon("door", "C3:00:00:00:00:02", DOOR, 6.0, 0.0,
                                            interval_s=10.0)], walkers=walkers)
    addresses: set[str] = set()
    heard = 0
    for adv in floor.adverts(t0, t0 + 8 * 3600):
        addresses.add(adv.address)
        heard += 1
    events, src = _run(floor, t0, t0 + 8 * 3600)
    blob = json.dumps([d for _, d in events]).upper()
    assert heard > 10_000 and len(addresses) > 50
    for a in addresses:
        assert a not in blob and a.replace(":", "") not in blob
    footfall = [d for t, d in events if t == "o2o.ble.footfall"]
    assert footfall and sum(f["devices"] for f in footfall) > 0
    assert src.counts["anonymous"] > 0
