"""SD-card wear: bytes the agent writes to disk per event, and its fsyncs per minute.

    python3 dev.py bench-wear [--scale X] [--rates 1,10,100] [--group 10] [--json FILE]
    python -m tests.bench.bench_wear ...

For each rate (events/s) and two ways of emitting — single events (one bus request each, each
committed on its own) and groups of --group events per request (group commit) — the real agent
process runs against a private mosquitto, and every event is deleted on its PUBACK. Measured
from the first emit to the outbox empty again (every row deleted):

- write_bytes of the agent process (/proc/PID/io: what the kernel accounts to it as sent to
  the disk; page-granular, so a commit costs at least the 4 KiB pages it touches), per event;
- fsync + fdatasync calls per minute, counted by strace (`-f --seccomp-bpf -ttt`, only those
  two calls traced, calls in the window counted); "n/a" without strace (--no-strace).

Baseline in the same run, beside each single-emit phase and at the same rate: raw sqlite3 in a
process of its own (WAL, synchronous=FULL, SQLite's default page size, the outbox's table and
indexes) inserting each event in one transaction and deleting it in the next, as a PUBACK
would, measured the same way (its own /proc/self/io, strace).

The default run takes about two minutes; --scale 5 runs five times as many events per phase.
Goal: <= 6 KiB per event at 1-10 events/s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.bus.client import BusClient
from agent.envelope import make_pending, render
from simulators.brokers import PrivateMosquitto

ROOT = Path(__file__).resolve().parents[2]
DATA = {"tag": "shelf-017", "product": "sku-2040", "campaign": "winter-sale", "rssi": -61}


def data(i: int) -> dict[str, Any]:
    """An event's data: its size varies a little from one to the next, as real events' do
    (so the outbox's byte counter changes in every transaction, as it does in a store)."""
    return {**DATA, "i": i, "note": "x" * (i * 7 % 23)}
# events per phase at each rate with --scale 1: about 20 s at 1/s, 10 s at 10/s, 5 s at 100/s
BASE_EVENTS = {1.0: 20, 10.0: 100, 100.0: 500}
SYNC_CALLS = ("fsync(", "fdatasync(")


def progress(msg: str) -> None:
    print(msg, flush=True, file=sys.stderr)


def write_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError(f"no write_bytes in /proc/{pid}/io")


def traced(cmd: list[str], trace: Path | None) -> list[str]:
    """`cmd` under strace counting sync calls (only those stop the process: seccomp-bpf)."""
    if trace is None:
        return cmd
    return ["strace", "-f", "--seccomp-bpf", "-ttt", "-e", "trace=fsync,fdatasync",
            "-o", str(trace), *cmd]


def syncs_between(trace: Path | None, t0: float, t1: float) -> int | None:
    if trace is None or not trace.exists():
        return None
    count = 0
    for line in trace.read_text(errors="replace").splitlines():
        parts = line.split(None, 2)  # pid, epoch timestamp, call
        if len(parts) == 3 and parts[2].startswith(SYNC_CALLS):
            with contextlib.suppress(ValueError):
                if t0 <= float(parts[1]) <= t1:
                    count += 1
    return count


def pace(n: int, rate: float, group: int, emit: Any) -> None:
    """Call emit(k) for each group of `group` events, at `rate` events/s on average."""
    interval = group / rate
    nxt = time.monotonic()
    for k in range(0, n, group):
        emit(min(group, n - k))
        nxt += interval
        pause = nxt - time.monotonic()
        if pause > 0:
            time.sleep(pause)


@dataclass
class Measure:
    events: int
    seconds: float
    written: int
    syncs: int | None

    def row(self) -> dict[str, Any]:
        per_min = None if self.syncs is None else round(self.syncs * 60 / self.seconds)
        return {"events": self.events, "seconds": round(self.seconds, 1),
                "kib_per_event": round(self.written / 1024 / self.events, 2),
                "fsyncs_per_min": per_min,
                "fsyncs_per_event": None if self.syncs is None
                else round(self.syncs / self.events, 2)}


# --- the baseline: raw sqlite3, one process of its own ------------------------------------

def raw_child(path: Path, rate: float, n: int) -> None:
    """Insert each event in a transaction, delete it in the next; print what was written."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE events (n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT, "
                 "priority INT, type TEXT, created REAL, size INT, bootid TEXT, body TEXT)")
    conn.execute("CREATE INDEX e1 ON events(priority, n)")
    conn.execute("CREATE INDEX e2 ON events(created)")
    seq = [0]

    def one(_k: int) -> None:
        seq[0] += 1
        p = make_pending("o2o.nfc.tap", data(seq[0]), time.time())
        body = render(p, '"o2o-edge://bench/raw"', "BOOT", seq[0])
        cur = conn.execute("INSERT INTO events (id, priority, type, created, size, bootid, "
                           "body) VALUES (?,?,?,?,?,?,?)",
                           (p.id, p.priority, p.type, p.created, len(body), "BOOT", body))
        conn.execute("DELETE FROM events WHERE n = ?", (cur.lastrowid,))

    one(0)  # warm: the file and its log exist
    w0, t0 = write_bytes(), time.time()
    pace(n, rate, 1, one)
    t1, w1 = time.time(), write_bytes()
    conn.close()
    print(json.dumps({"t0": t0, "t1": t1, "written": w1 - w0}), flush=True)


def start_raw(d: Path, rate: float, n: int, trace: Path | None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        traced([sys.executable, "-m", "tests.bench.bench_wear", "--raw-child",
                str(d / "raw.db"), str(rate), str(n)], trace),
        stdout=subprocess.PIPE, text=True, cwd=ROOT)


def finish_raw(proc: subprocess.Popen[str], n: int, trace: Path | None) -> Measure:
    out, _ = proc.communicate(timeout=600)
    doc = json.loads(out.strip().splitlines()[-1])
    return Measure(n, doc["t1"] - doc["t0"], doc["written"],
                   syncs_between(trace, doc["t0"], doc["t1"]))


# --- the agent ----------------------------------------------------------------------------

class Agent:
    def __init__(self, d: Path, url: str, trace: Path | None) -> None:
        self.d = d
        cfg = d / "config.toml"
        cfg.write_text(f'[device]\nstore = "bench"\nid = "agent"\n'
                       f'[outbox]\npath = "{d}/outbox.db"\n[mqtt]\nurl = "{url}"\n'
                       f'[bus]\nsocket = "{d}/agent.sock"\n')
        env = {**os.environ, "XDG_STATE_HOME": str(d / "state"),
               "XDG_RUNTIME_DIR": str(d / "run")}
        self.log = (d / "agent.log").open("ab")
        self.proc = subprocess.Popen(
            traced([sys.executable, "-m", "agent.cli.main", "run", "--config", str(cfg)], trace),
            stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        self.pid = self._agent_pid(trace is not None)
        deadline = time.monotonic() + 60
        while True:
            try:
                with BusClient(d / "agent.sock", timeout=2) as c:
                    c.request({"op": "ping"})
                return
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    tail = (d / "agent.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"the agent did not start:\n{tail}") from None
                time.sleep(0.1)

    def _agent_pid(self, under_strace: bool) -> int:
        """The agent's own pid (strace's child when traced)."""
        if not under_strace:
            return self.proc.pid
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # the child running python: strace forks short-lived children of its own first
            # (its check that seccomp filters work), and the agent's starts as strace too
            with contextlib.suppress(OSError, ValueError):
                kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
                for kid in kids.split():
                    if os.readlink(f"/proc/{kid}/exe") == os.path.realpath(sys.executable):
                        return int(kid)
            time.sleep(0.02)
        raise RuntimeError("strace did not start the agent")

    def depth(self, c: BusClient) -> int:
        return int(c.status()["outbox"]["depth"])

    def drained(self, c: BusClient, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.depth(c) != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the outbox did not drain; see {self.d}/agent.log")
            time.sleep(0.05)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def agent_phase(d: Path, url: str, rate: float, n: int, group: int,
                trace: Path | None) -> Measure:
    agent = Agent(d, url, trace)
    try:
        with BusClient(d / "agent.sock", timeout=60) as c:
            # warm: the file, its log and the broker session exist, the start-up notices are
            # sent and deleted, and a held PUBACK is written
            c.emit([{"type": "o2o.nfc.tap", "data": DATA}])
            agent.drained(c)
            time.sleep(3.0)
            seq = [0]

            def emit(k: int) -> None:
                evs = [{"type": "o2o.nfc.tap", "data": data(seq[0] + j)} for j in range(k)]
                seq[0] += k
                c.emit(evs)

            w0, t0 = write_bytes(agent.pid), time.time()
            pace(n, rate, group, emit)
            agent.drained(c)
            t1, w1 = time.time(), write_bytes(agent.pid)
    finally:
        agent.stop()
    return Measure(n, t1 - t0, w1 - w0, syncs_between(trace, t0, t1))


def table(phases: list[dict[str, Any]]) -> str:
    lines = ["events/s  per request  agent KiB/event  fsyncs/min  "
             "raw sqlite3 KiB/event  fsyncs/min"]
    for p in phases:
        raw = p.get("raw_sqlite3")
        lines.append(f"{p['rate']:>8g}  {p['group']:>11}  {p['agent']['kib_per_event']:>15.2f}  "
                     f"{p['agent']['fsyncs_per_min'] or 'n/a':>10}  "
                     + (f"{raw['kib_per_event']:>21.2f}  {raw['fsyncs_per_min'] or 'n/a':>10}"
                        if raw else f"{'':>21}  {'':>10}"))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="events per phase times this (default 1: about two minutes)")
    ap.add_argument("--rates", default="1,10,100", help="events/s, comma-separated")
    ap.add_argument("--group", type=int, default=10, help="events per request, group phases")
    ap.add_argument("--no-strace", action="store_true", help="do not count fsyncs")
    ap.add_argument("--dir", help="work here (a disk, not tmpfs: tmpfs accounts no writes)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, traces)")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--raw-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.raw_child:
        raw_child(Path(args.raw_child[0]), float(args.raw_child[1]), int(args.raw_child[2]))
        return 0
    strace = not args.no_strace and shutil.which("strace") is not None
    if not args.no_strace and not strace:
        progress("strace is not installed: fsyncs are not counted (apt install strace)")
    base = Path(args.dir) if args.dir else Path(os.environ.get("TMPDIR_DISK", "/var/tmp"))
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "goal": "<= 6 KiB/event "
                               "at 1-10 events/s", "phases": []}
    with contextlib.ExitStack() as stack:
        d = Path(tempfile.mkdtemp(prefix="o2o-wear-", dir=base))
        if args.keep:
            progress(f"work directory: {d}")
        else:
            stack.callback(shutil.rmtree, d, True)
        broker = PrivateMosquitto(d / "broker", persistence=False)
        broker.start()
        try:
            for rate in (float(r) for r in args.rates.split(",")):
                n = max(args.group, int(BASE_EVENTS.get(rate, 10 * rate) * args.scale))
                for group in (1, args.group):
                    name = f"{rate:g}-{group}"
                    pd = d / name
                    pd.mkdir()
                    mode = "single" if group == 1 else f"groups of {group}"
                    progress(f"{rate:g} events/s, {mode}: {n} events ...")
                    raw_trace = pd / "raw.strace" if strace else None
                    raw = start_raw(pd, rate, n, raw_trace) if group == 1 else None
                    ours = agent_phase(pd, broker.url, rate, n, group,
                                       pd / "agent.strace" if strace else None)
                    row: dict[str, Any] = {"rate": rate, "group": group, "agent": ours.row()}
                    line = (f"  agent {row['agent']['kib_per_event']:.2f} KiB/event, "
                            f"{row['agent']['fsyncs_per_min']} fsyncs/min")
                    if raw is not None:
                        row["raw_sqlite3"] = finish_raw(raw, n, raw_trace).row()
                        line += (f"; raw sqlite3 {row['raw_sqlite3']['kib_per_event']:.2f} "
                                 f"KiB/event, {row['raw_sqlite3']['fsyncs_per_min']} fsyncs/min")
                    progress(line)
                    results["phases"].append(row)
        finally:
            broker.kill()
    print(table(results["phases"]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
