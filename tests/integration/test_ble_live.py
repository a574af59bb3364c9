"""The agent process scanning with real bleak: the store floor model played in real time into
the fake BlueZ on a private D-Bus, events read back from the outbox; and `ble scan`."""

from __future__ import annotations

import json
import random
import subprocess
import time
from pathlib import Path

from drivers.ble.models import EddystoneUID, IBeacon
from simulators.ble_frames import encode
from simulators.bluez_player import FakeBlueZThread, play
from simulators.fake_bluez import PrivateBus
from simulators.floor import FixedBeacon, StoreFloor, Walker
from tests.conftest import CLI, ROOT, AgentProcess, wait_for

APP_UUID = "2f234454-cf6d-4a0f-adf2-f4911ba9ffa6"
DOOR = EddystoneUID("edd1ebeac04e5defa017", "000000000001", -20)
T0 = 1_795_500_000.0


def _floor() -> StoreFloor:
    """28 s of a store: the door beacon, four app users walking up to the Pi and away, six
    anonymous phones."""
    rng = random.Random(21)
    walkers = []
    for i in range(4):
        enter = T0 + 1 + 3 * i
        walkers.append(Walker(f"app-{i}", [(enter, 8.0, 0.0), (enter + 5, 1.0, 0.5),
                                           (enter + 10, 1.0, 0.5), (enter + 14, 8.0, 0.0)],
                              app=IBeacon(APP_UUID, 40 + i, i, -59), interval_s=0.5, seed=i))
    for i in range(6):
        enter = T0 + rng.uniform(0, 12)
        walkers.append(Walker(f"phone-{i}", [(enter, 6.0, 1.0), (enter + 15, 2.0, 2.0)],
                              interval_s=1.0, seed=100 + i))
    door = FixedBeacon("door", "C3:00:00:00:00:02", DOOR, 6.0, 0.0)
    return StoreFloor(beacons=[door], walkers=walkers, drop_rate=0.1, seed=5)


def test_floor_through_bleak_and_the_agent_into_the_outbox(
    bus: PrivateBus, tmp_path: Path, agent_factory: list[AgentProcess]
) -> None:
    floor = _floor()
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
beacons = ["eddystone-uid:{DOOR.namespace}:{DOOR.instance}"]
app_uuids = ["{APP_UUID}"]
path_loss_exponent = {floor.path_loss_exponent}
""")
    adverts = list(floor.adverts(T0, T0 + 28))
    addresses = {a.address for a in adverts}
    with FakeBlueZThread(bus.address) as bluez:
        agent = AgentProcess(cfg)
        agent_factory.append(agent)
        agent.start()
        wait_for(lambda: agent.status()["ble"]["scanner"]["state"] == "scanning", 30,
                 what="agent scanning")
        origin_wall, sent = bluez.run(play(bluez.fake, adverts, origin=T0), timeout=120)
        truth = floor.truth()
        # every app user has left; each exit comes after its exit time (10 s) of silence
        wait_for(lambda: agent.status()["ble"]["adverts"] >= sent * 0.99, 15,
                 what=lambda: f"adverts heard: {agent.status()['ble']} of {sent}")
        time.sleep(12)
        st = agent.status()["ble"]
        assert agent.stop() == 0
    assert st["scanner"]["mode"] == "passive" and st["scanner"]["restarts"] == 0
    res = subprocess.run([*CLI, "outbox", "export", "--config", str(cfg)], capture_output=True,
                         text=True, cwd=ROOT, timeout=60, check=True)
    events = [json.loads(x) for x in res.stdout.splitlines()]
    presence = [e["data"] for e in events if e["type"] == "o2o.ble.presence"]
    got: dict[str, dict[str, float]] = {}
    for d in presence:
        if d["action"] != "zone":
            assert d["action"] not in got.get(d["id"], {}), f"one {d['action']} per visit"
            got.setdefault(d["id"], {})[d["action"]] = d["at"] - origin_wall + T0
    door = f"eddystone-uid:{DOOR.namespace}:{DOOR.instance}"
    assert set(got) == {*truth, door}
    enter_err = [got[k]["enter"] - truth[k][0] for k in truth]
    exit_err = [truth[k][1] - got[k]["exit"] for k in truth]
    print(f"\nthrough bleak, {sent} adverts: enter {max(enter_err):.2f}s late at most, "
          f"last sighting {max(exit_err):.2f}s before leaving at most")
    # detection lags the truth by about an advertising interval, plus D-Bus and losses
    assert all(-0.2 < e < 3 for e in enter_err) and all(-0.2 < e < 3 for e in exit_err)
    zones = [d["zone"] for d in presence if d["id"] in truth and d["action"] == "zone"]
    assert "near" in zones, "walking up to 1 m is reported as a zone change"
    blob = (res.stdout.upper().encode()
            + b"".join(p.read_bytes() for p in tmp_path.glob("outbox.db*")).upper())
    for a in addresses:
        for spelling in (a, a.replace(":", ""), a.replace(":", "-")):
            assert spelling.encode() not in blob


def test_ble_scan_shows_what_is_heard(bus: PrivateBus) -> None:
    shelf = IBeacon("b9407f30-f5f8-466e-aff9-25556b57fe6d", 10, 1, -59)

    async def advertise(fake: object) -> None:
        import asyncio

        for _ in range(60):
            fake.advertise("C3:00:00:00:00:07", -58, *encode(shelf))  # type: ignore[attr-defined]
            fake.advertise("C3:00:00:00:00:02", -71, *encode(DOOR))  # type: ignore[attr-defined]
            fake.advertise("5A:11:22:33:44:55", -80,  # type: ignore[attr-defined]
                           {76: b"\x10\x05\x03\x1c\x0b\x1e\x0f"}, {})
            await asyncio.sleep(0.1)

    with FakeBlueZThread(bus.address) as bluez:
        proc = subprocess.Popen([*CLI, "ble", "scan", "--duration", "5", "--mode", "active"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT)
        wait_for(lambda: bluez.fake.discovering, 30, what="scan started")
        bluez.run(advertise(bluez.fake))
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    last = out.strip().split("\n\n")[-1].splitlines()
    assert last[0].startswith("3 devices  scanner: scanning (active)"), out
    rows = {line.split()[0]: line for line in last[1:]}
    assert list(rows) == ["C3:00:00:00:00:07", "C3:00:00:00:00:02", "5A:11:22:33:44:55"]
    assert "-58 dBm" in rows["C3:00:00:00:00:07"]
    assert f"ibeacon uuid={shelf.uuid} major=10 minor=1 tx_power=-59" in rows["C3:00:00:00:00:07"]
    assert f"eddystone-uid namespace={DOOR.namespace}" in rows["C3:00:00:00:00:02"]
    assert rows["5A:11:22:33:44:55"].endswith(" -")  # heard, not a beacon
