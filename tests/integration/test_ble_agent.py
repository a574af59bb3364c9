"""The agent with its BLE source replaying a recorded stretch of a store day."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

from drivers.ble.capture import Advert
from drivers.ble.models import EddystoneTLM, EddystoneUID, IBeacon
from drivers.ble.scanner import advert_line
from simulators.ble_frames import encode
from tests.conftest import CLI, ROOT, AgentProcess, wait_for

SHELF = IBeacon("b9407f30-f5f8-466e-aff9-25556b57fe6d", 10, 1, -59)
DOOR_UID = EddystoneUID("edd1ebeac04e5defa017", "000000000001", -20)
APP_UUID = "2f234454-cf6d-4a0f-adf2-f4911ba9ffa6"


def _day(path: Path) -> list[str]:
    """200 s: the shelf beacon all along, the door beacon (UID + TLM) until 100 s, an
    opted-in app from 20 s to 80 s, and 12 passing phones that must stay anonymous."""
    rng = random.Random(5)
    phones = [f"5A:{rng.randrange(256):02X}:{rng.randrange(256):02X}:10:20:{i:02X}"
              for i in range(12)]
    lines = []
    t0 = 1_795_400_000.0
    for s in range(200):
        t = t0 + s
        frames = [("C3:00:00:00:00:01", -62, encode(SHELF))]
        if s < 100:
            frames.append(("C3:00:00:00:00:02", -70, encode(DOOR_UID)))
            if s % 10 == 0:
                frames.append(("C3:00:00:00:00:02", -70,
                               encode(EddystoneTLM(2400, 21.0, 1000 + s, 5000.0 + s))))
        if 20 <= s < 80:
            frames.append(("7B:44:10:00:00:09", -55, encode(IBeacon(APP_UUID, 77, 3, -59))))
        for p in phones[(s // 30) * 2 : (s // 30) * 2 + 4]:
            frames.append((p, -80, ({76: b"\x10\x05\x03\x1c\x0b\x1e\x0f"}, {})))
        for addr, rssi, (m, sd) in frames:
            lines.append(advert_line(Advert(t, addr, rssi, None, None, m, sd, list(sd))))
    path.write_text("\n".join(lines) + "\n")
    return [*phones, "C3:00:00:00:00:01", "C3:00:00:00:00:02", "7B:44:10:00:00:09"]


def test_replayed_day_gives_presence_health_footfall_and_no_address(
    tmp_path: Path, agent_factory: list[AgentProcess]
) -> None:
    capture = tmp_path / "day.jsonl"
    addresses = _day(capture)
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""
[device]
store = "store-1"
id = "dev-1"
[outbox]
path = "{tmp_path / 'outbox.db'}"
[mqtt]
url = ""
[bus]
socket = "{tmp_path / 'agent.sock'}"
[ble]
enabled = true
replay = "{capture}"
replay_speed = 0
beacons = ["ibeacon:{SHELF.uuid}:10:1", "eddystone-uid:{DOOR_UID.namespace}:{DOOR_UID.instance}"]
app_uuids = ["{APP_UUID}"]
silent_after_s = 30
""")
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    wait_for(lambda: agent.status()["ble"]["scanner"]["state"] == "finished", 60,
             what="replay finished")
    st = agent.status()
    assert st["ble"]["scanner"]["bad_lines"] == 0
    assert agent.stop() == 0
    res = subprocess.run([*CLI, "outbox", "export", "--config", str(cfg)], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    events = [json.loads(x) for x in res.stdout.splitlines()]
    by_type: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for e in events:
        by_type.setdefault(e["type"], []).append(e["data"])

    presence = by_type["o2o.ble.presence"]
    app = [p for p in presence if p["id"].startswith("app:")]
    assert app[0]["action"] == "enter" and app[-1]["action"] == "exit"
    assert 55 <= app[-1]["dwell_s"] <= 60  # heard from 20 s to 79 s
    assert any(p["id"] == f"ibeacon:{SHELF.uuid}:10:1" and p["action"] == "enter"
               for p in presence)

    health = by_type["o2o.ble.beacon.health"]
    door = f"eddystone-uid:{DOOR_UID.namespace}:{DOOR_UID.instance}"
    assert any(h["beacon"] == door and h["status"] == "low-battery" and h["battery_mv"] == 2400
               for h in health)
    assert any(h["beacon"] == door and h["status"] == "silent" for h in health)

    footfall = by_type["o2o.ble.footfall"]
    assert footfall and max(f["devices"] for f in footfall) >= 4

    # not one Bluetooth address, in any spelling, in anything that reached the outbox
    blob = res.stdout.upper()
    for a in addresses:
        assert a not in blob and a.replace(":", "") not in blob and a.replace(":", "-") not in blob
