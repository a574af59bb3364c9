"""Beacon health, silence and presence keep their timing when NTP steps the wall clock; the
times in events follow the wall clock."""

from __future__ import annotations

from typing import Any

from agent.clock import SteadyClock
from agent.config import BleConfig
from agent.presence.ble_source import BleSource
from drivers.ble.capture import Advert
from drivers.ble.models import EddystoneTLM, EddystoneUID, IBeacon
from simulators.ble_frames import encode

DOOR = EddystoneUID("edd1ebeac04e5defa017", "000000000001", -20)
KEY = f"eddystone-uid:{DOOR.namespace}:{DOOR.instance}"
APP = "2f234454-cf6d-4a0f-adf2-f4911ba9ffa6"


class Clocks:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_795_000_000.0

    def advance(self, s: float) -> None:
        self.mono += s
        self.wall += s


class Idle:
    def status(self) -> dict[str, Any]:
        return {}


def _advert(frame: Any, address: str) -> Advert:
    m, s = encode(frame)
    return Advert(None, address, -60, None, None, m, s, list(s))


def test_a_step_back_does_not_stop_health_reports_or_exits() -> None:
    c = Clocks()
    events: list[tuple[str, dict[str, Any]]] = []
    cfg = BleConfig(enabled=True, beacons=[KEY], app_uuids=[APP], health_interval_s=60,
                    silent_after_s=120)
    src = BleSource(cfg, Idle(), lambda t, d: events.append((t, d)),
                    clock=SteadyClock(lambda: c.mono, lambda: c.wall), wall=lambda: c.wall)
    app = IBeacon(APP, 1, 7, -59)
    for _ in range(3):
        src.on_advert(_advert(DOOR, "C3:00:00:00:00:01"))
        src.on_advert(_advert(EddystoneTLM(3000, 21.0, 1, 1.0), "C3:00:00:00:00:01"))
        src.on_advert(_advert(app, "44:00:00:00:00:07"))
        c.advance(1)
        src.tick(src.now())
    assert [d["status"] for t, d in events if t == "o2o.ble.beacon.health"] == ["ok"]
    c.wall -= 2 * 3600  # NTP steps the clock back two hours
    for _ in range(70):  # the door beacon goes on; the app user has left
        src.on_advert(_advert(DOOR, "C3:00:00:00:00:01"))
        src.on_advert(_advert(EddystoneTLM(3000, 21.0, 1, 1.0), "C3:00:00:00:00:01"))
        c.advance(1)
        src.tick(src.now())
    health = [d for t, d in events if t == "o2o.ble.beacon.health"]
    assert [d["status"] for d in health] == ["ok", "ok"], "health stopped after the step"
    exits = [d for t, d in events if t == "o2o.ble.presence" and d["action"] == "exit"]
    assert [d["id"] for d in exits] == [f"app:{APP}:1:7"]
    # "at" is the last sighting, 72 s before the end, told on the wall clock as it is now
    assert abs(exits[0]["at"] - (c.wall - 72)) < 2
