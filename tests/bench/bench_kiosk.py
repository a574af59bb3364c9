"""Kiosk: a simulated NFC tap or QR scan submitted to the agent -> the kiosk's screen updated.

    python3 dev.py bench-kiosk [--events N] [--rate R] [--grid COLSxROWS] [--no-browser]
                               [--json FILE]

The agent runs as its own process; the kiosk too, headless (tests/bench/kiosk_child.py),
writing the time each screen change was painted. Events alternate between a tap on a shelf
tag and a scanned product link, each opening a different content card, submitted over the
local bus at R per second; latency is submit -> painted (CLOCK_MONOTONIC is shared by all
processes). Baseline in the same run: a bare bus subscriber (no Textual), submit -> received.
Also the kiosk process's RSS (current and peak). The kiosk's grid is 97x27 by default: what
the served page makes of a 1280x800 screen. With Chromium and Playwright installed, also the
served page's load -> attract screen complete at 800x480 and 1920x1080 and the served kiosk's
footprint (tests/bench/kiosk_page_load.py). Goals (issue 17): p99 <= 33 ms, page -> attract
complete <= 2 s, RSS <= 60 MiB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from agent.bus.client import BusClient
from agent.errors import AgentError

ROOT = Path(__file__).resolve().parents[2]
TAP = ("o2o.nfc.tap", {"tag": {"id": "04a1b2c3d4e5f6", "kind": "shelf"}, "records": [],
                       "ndef": "ok"})
SCAN = ("o2o.qr.scan", {"class": "product", "host": "shop.example", "path": "/p/rain-jacket",
                        "utm": {}})


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def _summary(xs: list[float]) -> dict[str, float]:
    return {"n": len(xs), "p50_ms": round(statistics.median(xs) * 1000, 2),
            "p99_ms": round(_pct(xs, 0.99) * 1000, 2), "max_ms": round(max(xs) * 1000, 2)}


def _rss_kib(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def _wait(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out: {what}")
        time.sleep(0.05)


def _lines(path: Path) -> list[tuple[float, str]]:
    out = []
    for line in path.read_text().splitlines():
        t, _, what = line.partition(" ")
        out.append((float(t), what))
    return out


def run(n: int, rate: float, grid: str = "97x27", browser: bool = True) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cfg = tmp / "config.toml"
        cfg.write_text(f'[device]\nstore = "bench"\nid = "kiosk-1"\n[outbox]\npath = '
                       f'"{tmp / "outbox.db"}"\n[mqtt]\nurl = ""\n[bus]\nsocket = '
                       f'"{tmp / "agent.sock"}"\n[kiosk]\nstore_db = "{tmp / "store.db"}"\n')
        agent = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "run", "--config",
                                  str(cfg)], cwd=ROOT, stderr=subprocess.DEVNULL)
        shown = tmp / "shown.txt"
        kiosk = None
        try:
            _wait(lambda: (tmp / "agent.sock").exists(), 30, "agent socket")
            kiosk = subprocess.Popen([sys.executable, "-m", "tests.bench.kiosk_child", str(cfg),
                                      str(shown), grid], cwd=ROOT, stderr=subprocess.DEVNULL)
            _wait(lambda: shown.exists() and shown.read_text(), 30, "kiosk up")
            rss_idle = _rss_kib(kiosk.pid)[0]
            # baseline: a bare subscriber on the same bus, receiving the same events
            received: list[float] = []
            sub = BusClient(tmp / "agent.sock", timeout=None)

            def listen() -> None:
                with contextlib.suppress(AgentError):  # the agent stops at the end
                    for ev in sub.subscribe():
                        if ev["type"] in ("o2o.nfc.tap", "o2o.qr.scan"):
                            received.append(time.monotonic())
            threading.Thread(target=listen, daemon=True).start()
            time.sleep(1.0)
            start_lines = len(_lines(shown))
            sent: list[float] = []
            with BusClient(tmp / "agent.sock") as bus:
                for i in range(n):
                    event_type, data = TAP if i % 2 == 0 else SCAN
                    sent.append(time.monotonic())
                    bus.emit([{"type": event_type, "data": data}])
                    time.sleep(max(0.0, sent[-1] + 1 / rate - time.monotonic()))
            _wait(lambda: len(_lines(shown)) - start_lines >= n, 30, "every screen change")
            _wait(lambda: len(received) >= n, 30, "every event at the bare subscriber")
            painted = [t for t, what in _lines(shown)[start_lines:] if what.startswith("page:")]
            rss, hwm = _rss_kib(kiosk.pid)
            kiosk.terminate()
            kiosk.wait(10)
            kiosk = None
            served: dict[str, Any] = {}
            if browser and Path("/usr/bin/chromium").exists():
                from tests.bench.kiosk_page_load import measure

                served = measure(cfg, [(800, 480), (1920, 1080)])
        finally:
            if kiosk is not None:
                kiosk.terminate()
                kiosk.wait(10)
            agent.terminate()
            agent.wait(30)
    kiosk_lat = [p - s for p, s in zip(painted[:n], sent, strict=True)]
    bus_lat = [r - s for r, s in zip(received[:n], sent, strict=True)]
    return {
        "events": n, "rate_per_s": rate, "grid": grid,
        "kiosk_submit_to_painted": _summary(kiosk_lat),
        "bare_subscriber_submit_to_received": _summary(bus_lat),
        "kiosk_added_p50_ms": round((statistics.median(kiosk_lat)
                                     - statistics.median(bus_lat)) * 1000, 2),
        "kiosk_rss_mib": round(rss / 1024, 1), "kiosk_rss_peak_mib": round(hwm / 1024, 1),
        "kiosk_rss_idle_mib": round(rss_idle / 1024, 1),
        "served_page_load": served or "not measured (no Chromium or --no-browser)",
        "goals": "p99 <= 33 ms; page -> attract complete <= 2 s; RSS <= 60 MiB",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=20.0, help="events per second")
    ap.add_argument("--grid", default="97x27",
                    help="the kiosk's cell grid (97x27: a 1280x800 screen served)")
    ap.add_argument("--no-browser", action="store_true", help="skip the served page's load")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    res = run(args.events, args.rate, args.grid, not args.no_browser)
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
