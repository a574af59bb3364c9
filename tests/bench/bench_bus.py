"""Local bus benchmarks: throughput of emits and the agent's memory under a hostile client.

    python -m tests.bench.bench_bus [--events N] [--json FILE]

Run from a checkout (the agent under test is that checkout's `agent.cli.main run`), so the
same script measures an older tree for a ratio in the same run.

1. emit throughput: one client, 200-event requests; and single-event requests.
2. RSS with a subscriber that never reads while 50,000 events (1 KiB data) are emitted, and
   12,000 events of 16 KiB (a backlog capped in lines grows with the size of the events).
3. 1,000 bus connections opened and left idle: RSS, descriptors, and whether a CLI still gets
   an answer.
4. 300 event types of 1 MB, then 300 distinct types of 128 characters: RSS afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path.cwd()


def progress(msg: str) -> None:
    print(msg, flush=True, file=sys.stderr)


def rss_mib(pid: int) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    return 0.0


class Conn:
    def __init__(self, path: Path, timeout: float = 60) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rb")

    def ask(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.sock.sendall(json.dumps(obj).encode() + b"\n")
        line = self.file.readline()
        reply: dict[str, Any] = json.loads(line) if line else {"ok": False, "reason": "closed"}
        return reply

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class Agent:
    def __init__(self, d: Path) -> None:
        d.mkdir(parents=True, exist_ok=True)
        self.sock = d / "agent.sock"
        cfg = d / "config.toml"
        cfg.write_text(f'[device]\nstore = "bench"\nid = "agent"\n[outbox]\npath = "{d}/outbox.db"'
                       f'\nmax_bytes = 4000000000\n[mqtt]\nurl = ""\n[bus]\nsocket = "{self.sock}"\n'
                       f'[kiosk]\nstore_db = "{d}/store.db"\n')
        env = {**os.environ, "XDG_STATE_HOME": str(d / "state"), "XDG_RUNTIME_DIR": str(d / "run")}
        self.log = (d / "agent.log").open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "run", "--config",
                                      str(cfg)], stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=ROOT, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                c = Conn(self.sock, 2)
                c.ask({"op": "ping"})
                c.close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("agent did not start")

    def rss(self) -> float:
        return rss_mib(self.proc.pid)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def bench_throughput(d: Path, n: int) -> dict[str, float]:
    a = Agent(d)
    try:
        c = Conn(a.sock)
        data = {"tag": "shelf-017", "product": "sku-2040", "campaign": "winter-sale", "rssi": -61}
        t0 = time.perf_counter()
        for k in range(0, n, 200):
            r = c.ask({"op": "emit", "events": [{"type": "o2o.nfc.tap", "data": {**data, "i": k + j}}
                                                for j in range(200)]})
            assert r["ok"], r
        batched = n / (time.perf_counter() - t0)
        singles = min(n // 20, 3000)
        t0 = time.perf_counter()
        for i in range(singles):
            r = c.ask({"op": "emit", "events": [{"type": "o2o.kiosk.view", "data": {"i": i}}]})
            assert r["ok"], r
        single = singles / (time.perf_counter() - t0)
        c.close()
        return {"batched_ev_s": round(batched), "single_ev_s": round(single)}
    finally:
        a.stop()


def bench_stuck_subscriber(d: Path, n: int = 50_000, size: int = 1024) -> dict[str, Any]:
    a = Agent(d)
    try:
        stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stuck.connect(str(a.sock))
        stuck.sendall(b'{"op":"subscribe"}\n')
        time.sleep(0.5)
        before = a.rss()
        peak = before
        c = Conn(a.sock)
        blob = "x" * size
        per = max(1, min(500, 512 * 1024 // size))  # requests well under the 1 MiB line
        for k in range(0, n, per):
            r = c.ask({"op": "emit", "events": [{"type": "o2o.kiosk.view",
                                                 "data": {"i": k + j, "blob": blob}}
                                                for j in range(per)]})
            assert r["ok"], r
            peak = max(peak, a.rss())
        time.sleep(1)
        after = a.rss()
        st = c.ask({"op": "status"})["status"]["bus"]
        c.close()
        stuck.close()
        return {"events": n, "data_bytes": size,
                "rss_before_mib": round(before, 1), "rss_peak_mib": round(peak, 1),
                "rss_after_mib": round(after, 1), "bus": {k: st.get(k) for k in
                                                          ("subscribers", "lagged_subscribers")}}
    finally:
        a.stop()


def bench_idle_connections(d: Path, n: int = 1000) -> dict[str, Any]:
    a = Agent(d)
    try:
        before = a.rss()
        held: list[socket.socket] = []
        failed = 0
        for _ in range(n):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            try:
                s.connect(str(a.sock))
                held.append(s)
            except OSError:
                failed += 1
                s.close()
        time.sleep(1)
        fds, rss = a.fds(), a.rss()
        t0 = time.monotonic()
        cli_ok, cli_after = False, None
        while time.monotonic() - t0 < 20:  # what a CLI or the kiosk meets meanwhile
            try:
                c = Conn(a.sock, 5)
                r = c.ask({"op": "status"})
                c.close()
                if r.get("ok"):
                    cli_ok, cli_after = True, round(time.monotonic() - t0, 1)
                    bus = r["status"]["bus"]
                    break
            except OSError:
                pass
            time.sleep(0.5)
        for s in held:
            s.close()
        return {"attempted": n, "connect_failed": failed, "agent_fds": fds,
                "rss_before_mib": round(before, 1), "rss_mib": round(rss, 1),
                "cli_answered": cli_ok, "cli_answered_after_s": cli_after,
                "bus": {k: bus.get(k) for k in ("clients", "refused_connections",
                                                "evicted_connections")} if cli_ok else None}
    finally:
        a.stop()


def bench_types(d: Path) -> dict[str, Any]:
    a = Agent(d)
    try:
        before = a.rss()
        c = Conn(a.sock)
        accepted_big = 0
        for i in range(300):
            r = c.ask({"op": "emit", "events": [{"type": f"o2o.t{i}." + "a" * 1_000_000,
                                                 "data": {}}]})
            accepted_big += bool(r.get("ok"))
        mid = a.rss()
        accepted_128 = 0
        for i in range(300):
            r = c.ask({"op": "emit", "events": [{"type": f"o2o.u{i:03d}." + "b" * 119,
                                                 "data": {}}]})
            accepted_128 += bool(r.get("ok"))
        after = a.rss()
        c.close()
        return {"accepted_1mb_types": accepted_big, "accepted_128char_types": accepted_128,
                "rss_before_mib": round(before, 1), "rss_after_1mb_types_mib": round(mid, 1),
                "rss_after_all_mib": round(after, 1)}
    finally:
        a.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--only",
                    default="throughput,subscriber,subscriber_big,connections,types")
    ap.add_argument("--json")
    args = ap.parse_args()
    out: dict[str, Any] = {"tree": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="o2o-bench-bus-") as tmp:
        d = Path(tmp)
        for name, fn in (("throughput", lambda: bench_throughput(d / "t", args.events)),
                         ("subscriber", lambda: bench_stuck_subscriber(d / "s")),
                         ("subscriber_big", lambda: bench_stuck_subscriber(d / "s2", 12_000,
                                                                           16 * 1024)),
                         ("connections", lambda: bench_idle_connections(d / "c")),
                         ("types", lambda: bench_types(d / "y"))):
            if name in args.only.split(","):
                progress(f"{name} ...")
                out[name] = fn()
                progress(f"  {out[name]}")
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
