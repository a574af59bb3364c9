"""Agent core benchmarks, each against a baseline measured in the same run.

    python3 dev.py bench [--events N] [--backlog N] [--json FILE]

1. outbox ingest: OutboxWriter (envelope + group commit) vs raw sqlite3 executemany of 100
   rows per transaction, same file settings (WAL, synchronous=FULL).          goal >= 0.5x
2. drain: a backlog drained by the real agent process to a private mosquitto vs raw paho
   publishing one event per QoS 1 message.                                    goal >= 5x
3. latency: submit -> committed through the local bus at a steady rate, p50/p99, idle and
   while another client streams batches.                                      goal p99 <= 60 ms
4. agent RSS while draining the backlog.                                       goal <= 80 MiB
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.bus.client import BusClient
from agent.envelope import make_pending, render
from agent.outbox import OutboxWriter
from simulators.brokers import PrivateMosquitto

ROOT = Path(__file__).resolve().parents[2]
DATA = {"tag": "shelf-017", "product": "sku-2040", "campaign": "winter-sale", "rssi": -61}


def progress(msg: str) -> None:
    print(msg, flush=True, file=sys.stderr)


def bench_raw_sqlite(path: Path, n: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE events (n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT, "
                 "priority INT, type TEXT, created REAL, size INT, bootid TEXT, body TEXT)")
    conn.execute("CREATE INDEX e1 ON events(priority, n)")
    conn.execute("CREATE INDEX e2 ON events(created)")
    # rows prepared outside the clock: the baseline measures SQLite alone
    now = time.time()
    rows = []
    for i in range(n):
        p = make_pending("o2o.nfc.tap", {**DATA, "i": i}, now)
        body = render(p, '"o2o-edge://s/d"', "BOOT", i + 1)
        rows.append((p.id, p.priority, p.type, p.created, len(body), "BOOT", body))
    t0 = time.perf_counter()
    for k in range(0, n, 100):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO events (id, priority, type, created, size, bootid, body)"
                         " VALUES (?,?,?,?,?,?,?)", rows[k : k + 100])
        conn.execute("COMMIT")
    dt = time.perf_counter() - t0
    conn.close()
    return n / dt


def bench_outbox_ingest(path: Path, n: int) -> float:
    w = OutboxWriter(path, max_bytes=4 * 1024**3, ttl_s=86400.0, source="o2o-edge://s/d",
                     bootid="BOOT")
    w.start()
    t0 = time.perf_counter()
    futs = []
    for k in range(0, n, 100):
        now = time.time()
        futs.append(w.submit([make_pending("o2o.nfc.tap", {**DATA, "i": k + j}, now)
                              for j in range(100)]))
        if len(futs) > 200:  # keep a bounded backlog of unanswered submits, like real callers
            futs.pop(0).result()
    for f in futs:
        f.result()
    dt = time.perf_counter() - t0
    w.stop()
    return n / dt


def bench_raw_paho(url: str, n: int) -> float:
    host, port = url.split("//")[1].rsplit(":", 1)
    done = threading.Event()
    acked = [0]
    # paho refuses more than 65,535 outstanding messages (MQTT_ERR_QUEUE_SIZE): keep a window
    window = threading.BoundedSemaphore(10_000)

    def on_publish(c: Any, u: Any, mid: int, rc: Any, p: Any) -> None:
        acked[0] += 1
        window.release()
        if acked[0] >= n:
            done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="raw-baseline", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.on_publish = on_publish
    c.connect(host, int(port))
    c.loop_start()
    now = time.time()
    bodies = [render(make_pending("o2o.nfc.tap", {**DATA, "i": i}, now), '"o2o-edge://s/d"',
                     "BOOT", i + 1).encode() for i in range(n)]
    t0 = time.perf_counter()
    for b in bodies:
        window.acquire()
        c.publish("o2o/v1/bench/raw/events", b, qos=1)
    if not done.wait(600):
        raise RuntimeError(f"raw paho baseline: only {acked[0]} of {n} acknowledged")
    dt = time.perf_counter() - t0
    c.disconnect()
    c.loop_stop()
    return n / dt


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _write_config(d: Path, url: str) -> Path:
    cfg = d / "config.toml"
    cfg.write_text(f'[device]\nstore = "bench"\nid = "agent"\n[outbox]\npath = "{d}/outbox.db"\n'
                   f'max_bytes = 4000000000\n[mqtt]\nurl = "{url}"\n'
                   f'[bus]\nsocket = "{d}/agent.sock"\n')
    return cfg


def _start_agent(cfg: Path, d: Path) -> Any:
    import subprocess

    log = (d / "agent.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "run", "--config", str(cfg)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with BusClient(d / "agent.sock", timeout=2) as c:
                c.request({"op": "ping"})
            return proc
        except Exception:
            time.sleep(0.1)
    raise RuntimeError("agent did not start")


def bench_drain(d: Path, url: str, backlog: int) -> tuple[float, float, float]:
    """Fill the outbox with `backlog` events, then time the agent draining it."""
    progress(f"  filling the outbox with {backlog:,} events ...")
    w = OutboxWriter(d / "outbox.db", max_bytes=4 * 1024**3, ttl_s=86400.0,
                     source="o2o-edge://bench/agent", bootid="FILL")
    w.start()
    now = time.time()
    for k in range(0, backlog, 1000):
        w.submit([make_pending("o2o.nfc.tap", {**DATA, "i": k + j}, now) for j in range(1000)])
        if k % 200_000 == 0 and k:
            progress(f"    {k:,}")
    w.stop(600)
    cfg = _write_config(d, url)
    proc = _start_agent(cfg, d)
    t0 = time.perf_counter()
    peak_rss = 0.0
    depth = backlog
    last = 0.0
    with BusClient(d / "agent.sock", timeout=60) as c:
        while True:
            st = c.status()
            depth = st["outbox"]["depth"]
            peak_rss = max(peak_rss, _rss_mib(proc.pid))
            if depth == 0:
                break
            if time.perf_counter() - last > 5:
                last = time.perf_counter()
                sent = st["uplink"]["acked_events"]
                progress(f"    drained {sent:,} / {backlog:,} ({sent / (last - t0):,.0f} ev/s), "
                         f"RSS {peak_rss:.0f} MiB")
            time.sleep(0.2)
    dt = time.perf_counter() - t0
    peak_rss = max(peak_rss, _rss_mib(proc.pid))
    proc.terminate()
    proc.wait(60)
    return backlog / dt, peak_rss, dt


def _background_load(sock: Path, stop: threading.Event, counter: list[int]) -> None:
    with BusClient(sock, timeout=60) as c:
        while not stop.is_set():
            c.emit([{"type": "o2o.ble.tlm", "data": {**DATA, "i": j}} for j in range(200)])
            counter[0] += 200


def bench_latency(d: Path, n: int, rate: float, load: bool = False) -> tuple[float, float, float]:
    """Single-event emits at `rate`/s; with `load`, while another client streams batches."""
    cfg = _write_config(d, "")
    proc = _start_agent(cfg, d)
    lat: list[float] = []
    interval = 1.0 / rate
    stop = threading.Event()
    loaded = [0]
    loader = threading.Thread(target=_background_load, args=(d / "agent.sock", stop, loaded))
    if load:
        loader.start()
    started = time.perf_counter()
    try:
        with BusClient(d / "agent.sock") as c:
            nxt = time.perf_counter()
            for i in range(n):
                t = time.perf_counter()
                c.emit([{"type": "o2o.kiosk.view", "data": {"i": i}}])
                lat.append((time.perf_counter() - t) * 1000)
                nxt += interval
                pause = nxt - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
    finally:
        stop.set()
        if load:
            loader.join(60)
            progress(f"  background load: {loaded[0] / (time.perf_counter() - started):,.0f} ev/s")
        proc.terminate()
        proc.wait(60)
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.99) - 1], lat[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000, help="ingest events (default 200k)")
    ap.add_argument("--backlog", type=int, default=1_000_000, help="drain backlog (default 1M)")
    ap.add_argument("--raw-messages", type=int, default=100_000,
                    help="one-event messages for the raw paho baseline (default 100k)")
    ap.add_argument("--latency-events", type=int, default=3000)
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}}
    with tempfile.TemporaryDirectory(prefix="o2o-bench-") as tmp:
        d = Path(tmp)
        progress(f"1/4 ingest: {args.events:,} events")
        raw = bench_raw_sqlite(d / "raw.db", args.events)
        ours = bench_outbox_ingest(d / "ours.db", args.events)
        results["ingest"] = {"outbox_ev_s": round(ours), "raw_sqlite_ev_s": round(raw),
                             "ratio": round(ours / raw, 2), "goal": ">= 0.5"}
        progress(f"  outbox {ours:,.0f} ev/s vs raw sqlite3 {raw:,.0f} ev/s "
                 f"-> {ours / raw:.2f}x")

        broker = PrivateMosquitto(d / "broker", persistence=False)
        broker.start()
        try:
            progress(f"2/4 drain: raw paho baseline, {args.raw_messages:,} one-event messages")
            raw_pub = bench_raw_paho(broker.url, args.raw_messages)
            progress(f"  raw paho {raw_pub:,.0f} ev/s")
            (d / "drain").mkdir()
            drain, rss, secs = bench_drain(d / "drain", broker.url, args.backlog)
        finally:
            broker.kill()
        results["drain"] = {"agent_ev_s": round(drain), "raw_paho_ev_s": round(raw_pub),
                            "ratio": round(drain / raw_pub, 2), "backlog": args.backlog,
                            "seconds": round(secs, 1), "goal": ">= 5"}
        results["rss"] = {"peak_mib": round(rss, 1), "goal": "<= 80"}
        progress(f"  agent {drain:,.0f} ev/s vs raw paho {raw_pub:,.0f} ev/s -> "
                 f"{drain / raw_pub:.2f}x; agent RSS peak {rss:.1f} MiB")

        progress(f"3/4 latency: {args.latency_events:,} single-event emits at 500/s")
        (d / "lat").mkdir()
        p50, p99, pmax = bench_latency(d / "lat", args.latency_events, 500.0)
        results["latency_ms"] = {"p50": round(p50, 2), "p99": round(p99, 2),
                                 "max": round(pmax, 2), "goal": "p99 <= 60"}
        progress(f"  submit->committed p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {pmax:.1f} ms")
        progress(f"4/4 latency under load: {args.latency_events:,} emits at 500/s while another "
                 "client streams 200-event batches")
        (d / "lat2").mkdir()
        p50, p99, pmax = bench_latency(d / "lat2", args.latency_events, 500.0, load=True)
        results["latency_under_load_ms"] = {"p50": round(p50, 2), "p99": round(p99, 2),
                                            "max": round(pmax, 2), "goal": "p99 <= 60"}
        progress(f"  submit->committed p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {pmax:.1f} ms")
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
