"""Memory with every touchpoint on: the agent's resident memory while a store day plays.

    python3 dev.py bench-memory [--hours H] [--speed X] [--json FILE]
    python -m tests.bench.bench_memory ...

1. What each stack costs to import: a fresh interpreter imports them one after another in the
   order the agent meets them, VmRSS read after each (the increments, MiB).
2. A generated store day (the soak's: shoppers with phones heard through bleak from the fake
   BlueZ, shelf tags and a loyalty card read by nfcpy from emulated tags, codes shown to the
   network camera, kiosk check-ins, the store link), no faults, played on the real agent
   twice in this run:
   - now: the agent as it is, its camera read and decoded in its process of its own;
   - baseline: the same agent with the stacks it used to load itself imported at its start
     (numpy through sqlite-utils, OpenCV, zxing-cpp): the old import pattern. The old agent
     also decoded frames in its own memory, so the baseline is, if anything, low (the old
     tree measured 99-102 MiB in the soak); and its camera process is the new one, so its
     PSS of both is no figure of the old agent's.
   Sampled every second: the agent's RSS, the camera process's RSS, and the PSS of both (a
   page shared by the two counted once, halved between them), median and max; at the end,
   where each process's resident memory lies (smaps, by library).
Goal (issue 19): agent RSS <= 80 MiB with every touchpoint on.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from simulators.scenario import runner as runner_module
from simulators.scenario.generate import store_day
from simulators.scenario.stage import CLOCKSHIFT, Stage

GOAL_MIB = 80.0
# the stacks in the order the agent meets them (a module a row, each on top of the ones above)
STACKS = [
    ("paho-mqtt (with ssl)", "paho.mqtt.client"),
    ("cryptography (Ed25519)", "cryptography.hazmat.primitives.asymmetric.ed25519"),
    ("the agent's core", "agent.daemon"),
    ("bleak + dbus-fast", "bleak.backends.bluezdbus.scanner"),
    ("the BLE source", "agent.presence.ble_source"),
    ("nfcpy", "nfc.clf.udp"),
    ("the NFC source", "agent.nfc_source"),
    ("the QR source (agent side)", "agent.qr_source"),
    ("sqlite-utils (+ numpy when installed)", "sqlite_utils"),
    ("OpenCV", "cv2"),
    ("zxing-cpp", "zxingcpp"),
    ("PIL + qrcode (the CLI's qr make)", "qrcode.image.pil"),
    ("textual (kiosk only)", "textual.app"),
]
# the old import pattern, in the agent only (its argv is "-m run ..."), not its camera process
PRELOAD = "import sys\nif 'run' in sys.argv:\n    import numpy, cv2, zxingcpp, sqlite_utils\n"


def stack_costs() -> list[tuple[str, float]]:
    code = (
        "import importlib, sys\n"
        "def rss():\n"
        "    with open('/proc/self/status') as fh:\n"
        "        return next(int(l.split()[1]) for l in fh if l.startswith('VmRSS')) / 1024\n"
        "print(rss())\n"
        "for m in sys.argv[1:]:\n"
        "    importlib.import_module(m)\n"
        "    print(rss())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *(m for _, m in STACKS)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    values = [float(v) for v in out]
    rows = [("python itself", values[0])]
    rows += [(name, b - a) for (name, _), a, b in zip(STACKS, values[:-1], values[1:], strict=True)]
    return rows


def _status(pid: int, key: str) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key)) / 1024


def _pss(pid: int) -> float:
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("Pss:")) / 1024


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(c) for c in fh.read().split()]


def where(pid: int, top: int = 12) -> list[tuple[str, float]]:
    """Resident memory by what is mapped: a package's own files, a library, the heap, or
    anonymous memory (Python's objects, native allocations, thread stacks)."""
    by: collections.Counter[str] = collections.Counter()
    name = ""
    with open(f"/proc/{pid}/smaps") as fh:
        for line in fh:
            parts = line.split()
            if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
                path = parts[5] if len(parts) > 5 else "anonymous"
                m = re.search(r"site-packages/([^/]+)", path)
                if m:
                    name = m.group(1).split(".")[0].replace("_python_headless", "")
                elif "/" in path:
                    name = path.rsplit("/", 1)[-1].split(".")[0]
                else:
                    name = path
            elif parts[0] == "Rss:":
                by[name] += int(parts[1])
    return [(k, v / 1024) for k, v in by.most_common(top)]


class PreloadStage(Stage):
    """The stage, its agent importing the stacks it used to load before anything else."""

    preload_dir = ""

    def agent_env(self) -> dict[str, str]:
        env = super().agent_env()
        env["PYTHONPATH"] = os.pathsep.join([self.preload_dir, env["PYTHONPATH"]])
        return env


def play(hours: float, speed: float, preload: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="o2o-bench-memory-") as tmp:
        wd = Path(tmp)
        stage_class: type[Stage] = Stage
        if preload:
            hook = wd / "preload"
            hook.mkdir()
            # the stage's own sitecustomize (the simulated clock) first, then the stacks
            (hook / "sitecustomize.py").write_text(
                f"import runpy\nrunpy.run_path({str(CLOCKSHIFT / 'sitecustomize.py')!r})\n"
                + PRELOAD
            )
            PreloadStage.preload_dir = str(hook)
            stage_class = PreloadStage
        saved = runner_module.Stage
        runner_module.Stage = stage_class  # type: ignore[misc]
        try:
            r = runner_module.Runner(store_day(hours, speed, faults=False), wd / "run")
        finally:
            runner_module.Stage = saved  # type: ignore[misc]
        agent: list[float] = []
        camera: list[float] = []
        pss: list[float] = []
        last: dict[str, Any] = {}
        done = threading.Event()

        def sample() -> None:
            while not done.wait(1.0):
                if not r.t0 or r.stage.agent is None:
                    continue
                with contextlib.suppress(OSError, StopIteration, ValueError):
                    pid = r.stage.agent_pid()
                    kids = _children(pid)
                    a = _status(pid, "VmRSS")
                    c = sum(_status(k, "VmRSS") for k in kids)
                    p = _pss(pid) + sum(_pss(k) for k in kids)
                    agent.append(a)
                    camera.append(c)
                    pss.append(p)
                    last["agent"] = where(pid)
                    if kids:  # not while the agent stops it
                        last["camera"] = where(kids[0])
                    last["agent_hwm"] = _status(pid, "VmHWM")

        thread = threading.Thread(target=sample, name="bench-sampler", daemon=True)
        thread.start()
        try:
            out = r.run()
        finally:
            done.set()
            thread.join(10)
    if not agent:
        raise SystemExit("no samples: the store day did not start")
    return {
        "problems": out.problems,
        "events_upstream": len(out.received.events),
        "samples": len(agent),
        "agent_rss_median": round(statistics.median(agent), 1),
        "agent_rss_max": round(max(agent), 1),
        "agent_rss_peak_hwm": round(last.get("agent_hwm", 0.0), 1),
        "camera_rss_median": round(statistics.median(camera), 1),
        "camera_rss_max": round(max(camera), 1),
        "pss_both_median": round(statistics.median(pss), 1),
        "pss_both_max": round(max(pss), 1),
        "where_agent": last.get("agent", []),
        "where_camera": last.get("camera", []),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hours", type=float, default=2.0, help="store hours played (default 2)")
    ap.add_argument("--speed", type=float, default=300.0, help="store seconds per second")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()

    costs = stack_costs()
    print("import cost, fresh interpreter, each on top of the rows above (MiB RSS):")
    for name, mib in costs:
        print(f"  {name:40s} {mib:6.1f}")
    print(f"\nstore day: {args.hours:g} store hours at {args.speed:g}x, every touchpoint on")
    now = play(args.hours, args.speed, preload=False)
    base = play(args.hours, args.speed, preload=True)
    rows = [
        ("agent RSS median (MiB)", "agent_rss_median"),
        ("agent RSS max (MiB)", "agent_rss_max"),
        ("agent RSS peak, VmHWM (MiB)", "agent_rss_peak_hwm"),
        ("camera process RSS median (MiB)", "camera_rss_median"),
        ("PSS agent + camera median (MiB)", "pss_both_median"),
        ("PSS agent + camera max (MiB)", "pss_both_max"),
        ("events upstream", "events_upstream"),
    ]
    print(f"\n  {'':34s} {'baseline':>9s} {'now':>9s}")
    for label, key in rows:
        print(f"  {label:34s} {base[key]!s:>9s} {now[key]!s:>9s}")
    ratio = now["agent_rss_median"] / base["agent_rss_median"]
    print(
        f"  agent RSS now / baseline: {ratio:.2f}x; goal <= {GOAL_MIB:g} MiB: "
        f"{'met' if now['agent_rss_max'] <= GOAL_MIB else 'NOT met'}"
    )
    for who in ("agent", "camera"):
        print(f"\nnow, the {who} process's resident memory by mapping (MiB):")
        for name, mib in now[f"where_{who}"]:
            print(f"  {name:40s} {mib:6.1f}")
    problems = now["problems"] + base["problems"]
    for p in problems:
        print(f"PROBLEM: {p}")
    if args.json:
        args.json.write_text(
            json.dumps({"imports": costs, "now": now, "baseline": base}, indent=2) + "\n"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
