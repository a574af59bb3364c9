"""CPU share of one core taken by a real agent process while adverts arrive through bleak
from the fake BlueZ on a private D-Bus, at a steady rate.

Baseline, measured in the same run and interleaved with the agent: bare bleak scanning the
same adverts with a callback that only counts (tests/bench/raw_bleak.py). The difference is
what the agent adds (decode, presence, footfall, outbox, bus). The machines are shared, so
each side is measured in several rounds and the median reported with the range.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.ble.models import IBeacon
from simulators.ble_frames import encode

APP_UUID = "2f234454-cf6d-4a0f-adf2-f4911ba9ffa6"
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


async def _measure(cmd: list[str], bus_address: str, rate: int, seconds: float,
                   heard: Callable[[subprocess.Popen[str]], int]) -> dict[str, Any]:
    """Start `cmd` against a fresh fake BlueZ, wait for its scan, then send `rate` adverts/s
    for `seconds` and read its CPU time; the same process idle beforehand for comparison.
    `heard(proc)` says how many adverts the process received (asked before it stops)."""
    from simulators.fake_bluez import FakeBlueZ

    fake = FakeBlueZ(bus_address)
    await fake.start()
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus_address)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        deadline = time.monotonic() + 30
        while not fake.discovering:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{cmd} did not start scanning")
            await asyncio.sleep(0.1)
        await asyncio.sleep(2)
        c0, w0 = _cpu_s(proc.pid), time.monotonic()
        await asyncio.sleep(min(5.0, seconds / 2))
        idle = (_cpu_s(proc.pid) - c0) / (time.monotonic() - w0)
        # 200 opted-in app phones: every advert goes through decode and presence
        frames = [encode(IBeacon(APP_UUID, i % 50, i % 7, -59)) for i in range(200)]
        addresses = [f"4A:00:00:00:{i // 256:02X}:{i % 256:02X}" for i in range(200)]
        c0, w0 = _cpu_s(proc.pid), time.monotonic()
        sent = 0
        while time.monotonic() - w0 < seconds:
            due = int(rate * (time.monotonic() - w0))  # catch up: a steady `rate`
            while sent < due:
                fake.advertise(addresses[sent % 200], -60 - sent % 3, *frames[sent % 200])
                sent += 1
            await asyncio.sleep(0.005)
        wall = time.monotonic() - w0
        busy = (_cpu_s(proc.pid) - c0) / wall
        await asyncio.sleep(0.5)  # the last adverts on their way
        got = await asyncio.to_thread(heard, proc)
        return {"heard": got / sent, "busy": busy, "idle": idle}
    finally:
        proc.terminate()
        # waited for off the loop, so the fake still answers the process's StopDiscovery
        await asyncio.to_thread(proc.communicate, None, 30)
        await fake.stop()


def cpu_share(rate: int, seconds: float, rounds: int = 3) -> dict[str, Any]:
    from agent.bus.client import BusClient
    from simulators.fake_bluez import PrivateBus

    tmp = Path(tempfile.mkdtemp(prefix="o2o-cpu-"))
    cfg = tmp / "config.toml"
    cfg.write_text(f'[device]\nstore = "bench"\nid = "cpu"\n[outbox]\npath = "{tmp}/o.db"\n'
                   f'[mqtt]\nurl = ""\n[bus]\nsocket = "{tmp}/a.sock"\n'
                   f'[ble]\nenabled = true\nmode = "active"\napp_uuids = ["{APP_UUID}"]\n')
    agent_cmd = [sys.executable, "-m", "agent.cli.main", "run", "--config", str(cfg)]
    raw_cmd = [sys.executable, "-m", "tests.bench.raw_bleak"]
    sock = tmp / "a.sock"

    def agent_heard(proc: subprocess.Popen[str]) -> int:
        with BusClient(sock) as c:
            return int(c.status()["ble"]["adverts"])

    def raw_heard(proc: subprocess.Popen[str]) -> int:
        proc.send_signal(signal.SIGTERM)  # it prints its count when stopped
        assert proc.stdout is not None
        return int(proc.stdout.readline() or 0)

    agent: list[dict[str, Any]] = []
    raw: list[dict[str, Any]] = []
    bus = PrivateBus()
    bus.start()
    try:
        for _ in range(rounds):
            raw.append(asyncio.run(_measure(raw_cmd, bus.address, rate, seconds, raw_heard)))
            agent.append(asyncio.run(_measure(agent_cmd, bus.address, rate, seconds,
                                              agent_heard)))
    finally:
        bus.stop()
    a_busy, r_busy = [r["busy"] for r in agent], [r["busy"] for r in raw]
    med_agent, med_raw = statistics.median(a_busy), statistics.median(r_busy)
    return {
        "rate_adverts_s": rate, "seconds_per_round": seconds, "rounds": rounds,
        "agent_cpu_share": round(med_agent, 3),
        "agent_range": [round(min(a_busy), 3), round(max(a_busy), 3)],
        "agent_idle": round(statistics.median(r["idle"] for r in agent), 3),
        "agent_heard_fraction": round(min(r["heard"] for r in agent), 4),
        "raw_bleak_cpu_share": round(med_raw, 3),
        "raw_bleak_range": [round(min(r_busy), 3), round(max(r_busy), 3)],
        "raw_bleak_heard_fraction": round(min(r["heard"] for r in raw), 4),
        "agent_over_raw_us_per_advert": round((med_agent - med_raw) / rate * 1e6, 1),
        "goal": "agent <= 0.15 at 2000 adverts/s",
    }
