"""Start-up: `o2o-edge run` to READY=1, to its first event upstream, and to every touchpoint
live, with every touchpoint on.

    python3 dev.py bench-startup [--runs N] [--json FILE]
    python -m tests.bench.bench_startup ...

The simulated store's hardware is brought up once (the soak's stage: a private mosquitto
behind the store's link, the fake BlueZ on a private D-Bus, the nfcpy UDP tag emulator, the
network camera). Then the real agent is started N times per variant, the variants taking
turns, each run from its spawn to:
- READY=1 on a notify socket of ours (NOTIFY_SOCKET, as systemd's Type=notify reads it);
- its `o2o.agent.started` event received by a subscriber on the broker (upstream);
- every touchpoint live (the scanner scanning, the reader ready, the camera capturing).
It is stopped with SIGTERM after each run; its outbox and store database stay, as on a device
that restarts. Medians (and the slowest run) of N. Variants, in the same run:
- `python -c pass` and `python -c "import paho.mqtt.client"`: the interpreter's own floor;
- core: the agent with no touchpoint (BLE, NFC and QR off);
- all: every touchpoint on;
- all, old import pattern: every touchpoint on, the agent importing the stacks it used to
  load itself (numpy through sqlite-utils, OpenCV, zxing-cpp) before anything else. (Its
  camera still opens in the camera process, which the old agent did not have: "live" here is
  the new way's, the other columns the old pattern's.)
CPU time (user + system) to READY=1 and to live is printed too: on a busy machine the wall
times swing with its load, the CPU a start costs much less.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import tomli_w
from paho.mqtt.enums import CallbackAPIVersion

from agent.bus.client import BusClient
from simulators.scenario.generate import store_day
from simulators.scenario.stage import CLOCKSHIFT, Stage
from tests.bench.bench_memory import PRELOAD

TIMEOUT_S = 60.0


class HardwareOnly(Stage):
    """The stage without its agent and collector: the bench starts agents itself."""

    def start_agent(self) -> None:
        pass

    def start_collector(self) -> None:
        pass


class Upstream:
    """Times at which each agent's `o2o.agent.started` arrived, by the agent's pid."""

    def __init__(self, url: str, topic: str) -> None:
        self.seen: dict[int, float] = {}
        self.cond = threading.Condition()
        parts = urlsplit(url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-startup")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        at = time.monotonic()
        if b"o2o.agent.started" not in msg.payload:
            return
        with self.cond:
            for pid in re.findall(rb'"pid":\s*(\d+)', msg.payload):
                self.seen.setdefault(int(pid), at)
            self.cond.notify_all()

    def wait(self, pid: int, timeout: float) -> float | None:
        with self.cond:
            self.cond.wait_for(lambda: pid in self.seen, timeout)
            return self.seen.get(pid)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _live(bus: Path) -> bool:
    with contextlib.suppress(Exception), BusClient(bus, timeout=2) as c:
        st: Any = c.status()
        return bool(
            st["ble"]["scanner"]["state"] == "scanning"
            and st["nfc"]["reader"]["state"] == "ready"
            and st["qr"]["camera"]["state"] == "capturing"
        )
    return False


def agent_run(
    cfg: Path, env: dict[str, str], log: Path, upstream: Upstream, bus: Path, touchpoints: bool
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="o2o-notify-") as d:
        address = str(Path(d) / "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(address)
        notify.settimeout(TIMEOUT_S)
        t0 = time.monotonic()
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "agent.cli.main", "run", "--config", str(cfg)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**env, "NOTIFY_SOCKET": address},
            )
        try:
            while b"READY=1" not in notify.recv(4096):
                pass
            ready = time.monotonic() - t0
            cpu_ready = cpu_s(proc.pid)
            first = upstream.wait(proc.pid, TIMEOUT_S)
            if first is None:
                raise SystemExit(f"no o2o.agent.started upstream; see {log}")
            live = cpu_live = float("nan")
            if touchpoints:
                while not _live(bus):
                    if time.monotonic() - t0 > TIMEOUT_S:
                        raise SystemExit(f"the touchpoints did not come up; see {log}")
                    time.sleep(0.02)
                live = time.monotonic() - t0
                cpu_live = cpu_s(proc.pid) + sum(cpu_s(k) for k in children(proc.pid))
        finally:
            notify.close()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    return {
        "ready": ready,
        "upstream": first - t0,
        "live": live,
        "cpu_ready": cpu_ready,
        "cpu_live": cpu_live,
    }


def cpu_s(pid: int) -> float:
    """CPU time (user + system, seconds) a process has used: what start-up costs, however
    busy the machine is (wall times on a shared machine swing with its load)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(c) for c in fh.read().split()]


def python_floor(code: str) -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.monotonic() - t0


def _fig(values: list[float]) -> str:
    values = [v for v in values if v == v]  # NaN: not measured for this variant
    if not values:
        return "-"
    return f"{statistics.median(values) * 1000:.0f} ({max(values) * 1000:.0f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="runs per variant (default 5)")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()

    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="o2o-bench-startup-") as tmp:
        wd = Path(tmp)
        stage = HardwareOnly(store_day(1, 300.0, faults=False), wd / "stage")
        stage.start()
        upstream = None
        try:
            assert stage.broker is not None
            upstream = Upstream(
                stage.broker.url, f"o2o/v1/{stage.sc.store}/{stage.sc.device}/events"
            )
            all_cfg = stage.cfg_path
            core = tomllib.loads(all_cfg.read_text())
            for section in ("ble", "nfc", "qr"):
                core[section]["enabled"] = False
            core_cfg = wd / "core.toml"
            core_cfg.write_text(tomli_w.dumps(core))
            env = stage.agent_env()
            hook = wd / "preload"
            hook.mkdir()
            (hook / "sitecustomize.py").write_text(
                f"import runpy\nrunpy.run_path({str(CLOCKSHIFT / 'sitecustomize.py')!r})\n"
                + PRELOAD
            )
            old_env = {**env, "PYTHONPATH": os.pathsep.join([str(hook), env["PYTHONPATH"]])}
            variants = [
                ("core (no touchpoint)", core_cfg, env, False),
                ("all touchpoints", all_cfg, env, True),
                ("all, old import pattern", all_cfg, old_env, True),
            ]
            log = wd / "agent.log"
            bus = stage.bus_socket
            for _, cfg, e, tp in variants:  # a first run each: files made, caches warm
                agent_run(cfg, e, log, upstream, bus, tp)
            floors: dict[str, list[float]] = {"pass": [], "paho": []}
            for _ in range(args.runs):
                floors["pass"].append(python_floor("pass"))
                floors["paho"].append(python_floor("import paho.mqtt.client"))
                for name, cfg, e, tp in variants:
                    results.setdefault(name, []).append(agent_run(cfg, e, log, upstream, bus, tp))
        finally:
            if upstream is not None:
                upstream.close()
            stage.stop()

    print(f"start-up, ms: median (slowest) of {args.runs} runs, every variant in this run")
    print(f"  {'':26s} {'READY=1':>13s} {'first event up':>14s} {'touchpoints live':>16s}")
    print(f"  {'python -c pass':26s} {_fig(floors['pass']):>13s}")
    print(f"  {'python + import paho':26s} {_fig(floors['paho']):>13s}")
    for name, runs in results.items():
        print(
            f"  {name:26s} {_fig([r['ready'] for r in runs]):>13s} "
            f"{_fig([r['upstream'] for r in runs]):>14s} {_fig([r['live'] for r in runs]):>16s}"
        )
    print("CPU time used, ms (user + system; at live: the agent and its camera process):")
    print(f"  {'':26s} {'to READY=1':>13s} {'to live':>14s}")
    for name, runs in results.items():
        print(
            f"  {name:26s} {_fig([r['cpu_ready'] for r in runs]):>13s} "
            f"{_fig([r['cpu_live'] for r in runs]):>14s}"
        )
    if args.json:
        args.json.write_text(json.dumps({"floors": floors, "agent": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
