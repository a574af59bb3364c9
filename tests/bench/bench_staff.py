"""Staff view benchmark: a kiosk's call for staff -> the alert shown on a phone's staff view,
against a bare bus subscriber seeing the agent's o2o.staff.alert event in the same run; the
staff view server's RSS (and the agent's).

    python -m tests.bench.bench_staff [--calls N] [--json FILE]

Runs the checkout's agent (`agent.cli.main run`, no broker: local first) and staff view
(`agent.cli.main staff-view`) as processes, and a headless Chromium (Debian's
/usr/bin/chromium, through Playwright) signed in at 390x844. Each call is an
o2o.kiosk.assist emitted on the bus as the kiosk does; "shown" is the page's own clock when
the alert's card was rendered (window.staffView.shown), so Playwright's polling adds nothing.
Calls go one at a time; each alert is closed before the next.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from agent.bus.client import AsyncBusClient, BusClient
from agent.contracts.alerts import token_digest
from agent.errors import AgentError
from kiosk.pin import hash_pin

ROOT = Path.cwd()
PIN = "4821"
TOKEN = "staff-bus-token-of-the-benchmark"  # the view's bus_token; the agent has its digest
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def rss_mib(pid: int) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    return 0.0


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def wait(pred: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except (OSError, AgentError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"bench-staff: {what} did not come up in {timeout:.0f} s")


def start(tmp: Path) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], int]:
    sock = tmp / "agent.sock"
    cfg = tmp / "config.toml"
    cfg.write_text(f'[device]\nstore = "store-1"\nid = "bench-1"\n[outbox]\npath = '
                   f'"{tmp / "outbox.db"}"\n[mqtt]\nurl = ""\n[bus]\nsocket = "{sock}"\n'
                   f'[kiosk]\nstore_db = "{tmp / "store.db"}"\n'
                   f'[staff]\nbus_tokens = ["{token_digest(TOKEN)}"]\n', encoding="utf-8")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    settings = tmp / "staff-view.toml"
    settings.write_text(f'[staff_view]\nenabled = true\nlisten = ["127.0.0.1:{port}"]\n'
                        f'rate_per_s = 1000\nbus_token = "{TOKEN}"\n'
                        f'[staff_view.staff]\nAnna = "{hash_pin(PIN)}"\n',
                        encoding="utf-8")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp / "state")}
    log = (tmp / "log").open("ab")
    agent = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "run", "--config",
                              str(cfg)], cwd=ROOT, env=env, stdout=log, stderr=log)

    def ping() -> bool:
        with BusClient(sock, timeout=2) as c:
            c.request({"op": "ping"})
        return True

    wait(ping, "the agent")
    view = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "staff-view", "--config",
                             str(cfg), "--settings", str(settings)], cwd=ROOT, env=env,
                            stdout=log, stderr=log)

    def up() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return bool(json.load(r)["agent_up"])

    wait(up, "the staff view")
    return agent, view, port


async def measure(sock: Path, port: int, calls: int, view_pid: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    bare: dict[str, float] = {}
    cause_to_alert: dict[str, str] = {}
    arrived = asyncio.Event()
    watcher = await AsyncBusClient.connect(sock)
    stream = await watcher.subscribe()

    async def watch() -> None:
        async for e in stream:
            if e["type"] == "o2o.staff.alert":
                bare[e["data"]["alert"]] = time.time()
                cause_to_alert[str(e["data"]["cause"])] = e["data"]["alert"]
                arrived.set()

    watching = asyncio.create_task(watch())
    kiosk = await AsyncBusClient.connect(sock)
    staff = await AsyncBusClient.connect(sock)
    to_page: list[float] = []
    to_bus: list[float] = []
    rss_view: list[float] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=FLAGS)
        ctx = await browser.new_context(viewport={"width": 390, "height": 844}, bypass_csp=True)
        page = await ctx.new_page()
        await page.goto(f"http://127.0.0.1:{port}/")
        await page.fill("#name", "Anna")
        await page.fill("#pin", PIN)
        await page.click("#pin-form button[type=submit]")
        await page.wait_for_function("() => window.staffView.streams >= 1")
        for i in range(calls):
            arrived.clear()
            t0 = time.time()
            [cause] = await kiosk.emit([{"type": "o2o.kiosk.assist",
                                         "data": {"screen": "attract"}}])
            while cause not in cause_to_alert:
                await asyncio.wait_for(arrived.wait(), 10)
                arrived.clear()
            alert = cause_to_alert[str(cause)]
            handle = await page.wait_for_function(
                "(id) => window.staffView.shown[id]", arg=alert, timeout=10_000)
            shown_ms = float(await handle.json_value())
            to_page.append(shown_ms / 1000 - t0)
            to_bus.append(bare[alert] - t0)
            await staff.request({"op": "alert-close", "id": alert, "by": "bench",
                                 "token": TOKEN})
            if i % 20 == 0:
                rss_view.append(rss_mib(view_pid))
        await browser.close()
    watching.cancel()
    for c in (watcher, kiosk, staff):
        await c.close()
    ms = [x * 1000 for x in to_page]
    bms = [x * 1000 for x in to_bus]
    return {"calls": calls,
            "call_to_staff_view_ms": {"p50": round(statistics.median(ms), 1),
                                      "p99": round(pct(ms, 0.99), 1), "max": round(max(ms), 1)},
            "call_to_bare_subscriber_ms": {"p50": round(statistics.median(bms), 1),
                                           "p99": round(pct(bms, 0.99), 1),
                                           "max": round(max(bms), 1)},
            "staff_view_rss_mib": {"during": round(max(rss_view), 1),
                                   "after": round(rss_mib(view_pid), 1)}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-staff-") as d:
        tmp = Path(d)
        agent, view, port = start(tmp)
        try:
            idle_view = rss_mib(view.pid)
            result = asyncio.run(measure(tmp / "agent.sock", port, args.calls, view.pid))
            result["staff_view_rss_mib"]["idle"] = round(idle_view, 1)
            result["agent_rss_mib"] = round(rss_mib(agent.pid), 1)
        finally:
            for proc in (view, agent):
                proc.terminate()
                proc.wait(30)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
