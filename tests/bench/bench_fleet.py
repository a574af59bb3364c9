"""The fleet upstream: collectors' ingest into PostgreSQL against raw psycopg in the same run,
the reconnect storm of a thousand stores, and what each fault loses.

    python -m tests.bench.bench_fleet [--events N] [--stores K] [--backlog B] [--json FILE]

1. Ingest: N events from 100 devices in batches of 10 (a store's message is small: it sends
   soon after each commit) queued on a private Mosquitto for 1, 2 and 4 collectors in one
   shared subscription, then the collectors started: events/s from the first row stored to
   the last. Baselines, same rows, same database: psycopg executemany of one INSERT ... ON
   CONFLICT DO NOTHING per event, and COPY into a table like it. One collector on the NATS
   cluster too (3.1.1, its session on another node than the publisher's).
2. Storm: K virtual stores, B events each in their outboxes (hours of backlog after an
   outage), all connecting at once: seconds until every store has its PUBACKs and until
   every event is in PostgreSQL (2 collectors), on Mosquitto and on the 3-node NATS cluster
   (one collector: NATS 2.9's MQTT has no shared subscriptions).
3. Faults on the NATS cluster, 200 stores at 10 events/s for 8 s, the collector away for the
   last 5 and over the fault, then back: a node SIGKILLed and restarted, a
   node restarted with SIGTERM, the whole cluster SIGKILLed and restarted, each `--rounds`
   times; a single NATS node restarted with SIGTERM as the baseline: events lost after a
   PUBACK.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from agent.collector.store import EventStore
from simulators.brokers import PrivateMosquitto, PrivateNats
from simulators.cluster import NatsCluster
from simulators.fleet.check import check
from simulators.fleet.fleet import Fleet

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
CLI = [sys.executable, "-m", "agent.cli.main"]


@contextmanager
def database() -> Iterator[str]:
    name = f"o2o_bench_fleet_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        EventStore(url).close()
        yield url
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def collector(url: str, db: str, n: int, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*CLI, "collect", "--broker", url, "--db", db, "--client-id",
                             f"bench-collector-{n}", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        p.wait(60)


def count(db: str) -> int:
    with psycopg.connect(db, autocommit=True) as c:
        row = c.execute("SELECT count(*) FROM events WHERE type <> 'o2o.probe'").fetchone()
        return int(row[0]) if row else 0


def batches(n_events: int, per: int = 10, devices: int = 100) -> list[tuple[str, bytes]]:
    out = []
    seq = [0] * devices
    for b in range(n_events // per):
        d = b % devices
        events = []
        for _ in range(per):
            seq[d] += 1
            events.append({"specversion": "1.0", "id": f"D{d:03d}S{seq[d]:08d}",
                           "source": f"o2o-edge://b{d:03d}/pi", "type": "o2o.kiosk.view",
                           "time": "2026-12-02T10:00:00.000Z", "bootid": f"B{d:03d}",
                           "seq": seq[d], "data": {"screen": "offers", "n": seq[d]}})
        out.append((f"o2o/v1/b{d:03d}/pi/events", json.dumps(events).encode()))
    return out


def ingest(n_events: int, workdir: Path) -> dict[str, Any]:
    msgs = batches(n_events)
    total = len(msgs) * 10
    out: dict[str, Any] = {"events": total, "events_per_message": 10}
    rows = [(e["id"], e["source"], e["bootid"], e["seq"], e["type"], e["time"],
             json.dumps(e, separators=(",", ":")))
            for _, payload in msgs for e in json.loads(payload)]
    with database() as db, psycopg.connect(db, autocommit=True) as c:
        began = time.perf_counter()
        with c.cursor() as cur, c.transaction():
            cur.executemany("INSERT INTO events VALUES (%s, %s, %s, %s, %s, %s, %s) "
                            "ON CONFLICT (id) DO NOTHING", rows)
        out["raw_executemany_events_s"] = round(total / (time.perf_counter() - began))
        c.execute("CREATE TABLE copied (LIKE events INCLUDING ALL)")
        began = time.perf_counter()
        with c.cursor() as cur, c.transaction(), \
                cur.copy("COPY copied FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        out["raw_copy_events_s"] = round(total / (time.perf_counter() - began))
    for n in (1, 2, 4):
        broker = PrivateMosquitto(workdir / f"mq{n}")
        broker.start()
        try:
            out[f"collectors_{n}_events_s"] = queued_then_collected(
                msgs, total, broker.port, broker.url, n, ("--shared", "bench"), mqtt.MQTTv5)
        finally:
            broker.kill()
    cluster = NatsCluster(workdir / "ingest-nats")
    cluster.start()
    try:  # one collector: NATS 2.9's MQTT has no shared subscriptions
        out["nats_cluster_1_collector_events_s"] = queued_then_collected(
            msgs, total, cluster.ports[0], cluster.nodes[2].url, 1, ("--protocol", "3.1.1"),
            mqtt.MQTTv311)
    finally:
        cluster.stop()
    return out


def queued_then_collected(msgs: list[tuple[str, bytes]], total: int, port: int, url: str,
                          n: int, extra: tuple[str, ...], protocol: Any) -> int:
    """Events/s of `n` collectors from the first row stored to the last, the messages all
    queued for their sessions before they start."""
    with database() as db:
        # the sessions first, then away: the broker queues each its share
        procs = [collector(url, db, i, *extra) for i in range(n)]
        time.sleep(3)
        stop(procs)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=protocol)
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        for info in [pub.publish(t, p, qos=1) for t, p in msgs]:
            info.wait_for_publish(120)
        pub.loop_stop()
        pub.disconnect()
        procs = [collector(url, db, i, *extra) for i in range(n)]
        first = last = 0.0
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            k = count(db)
            now = time.perf_counter()
            if k and not first:
                first = now
            if k >= total:
                last = now
                break
            time.sleep(0.05)
        stop(procs)
    return round(total / max(last - first, 1e-3)) if last else 0


async def storm(fleet: Fleet, db: str, backlog: int) -> dict[str, Any]:
    for store in fleet.stores:
        store.commit(backlog)
    began = time.monotonic()
    await fleet.start(ramp_s=0.0)  # every store at once: the broker just came back
    drained = await fleet.drain(900)
    with psycopg.connect(db, autocommit=True) as conn:
        while not check(conn, fleet.stores).exact and time.monotonic() - began < 900:
            await asyncio.sleep(0.5)
        result = check(conn, fleet.stores)
    stored = time.monotonic() - began
    await fleet.stop()
    first = sorted(s.stats.first_connect_s or 0.0 for s in fleet.stores)
    return {"stores": len(fleet.stores), "events": result.committed,
            "all_acked_s": round(drained, 1), "all_stored_s": round(stored, 1),
            "connected_p50_s": round(first[len(first) // 2], 2),
            "connected_max_s": round(first[-1], 2), "lost": result.lost_after_puback,
            "exact": result.exact}


def storms(k: int, backlog: int, workdir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    broker = PrivateMosquitto(workdir / "storm-mq")
    broker.start()
    try:
        with database() as db:
            procs = [collector(broker.url, db, i, "--shared", "storm") for i in range(2)]
            time.sleep(3)
            out["mosquitto_2_collectors"] = asyncio.run(storm(Fleet([broker.port], k), db,
                                                              backlog))
            stop(procs)
    finally:
        broker.kill()
    cluster = NatsCluster(workdir / "storm-nats")
    cluster.start()
    try:
        with database() as db:
            procs = [collector(cluster.nodes[2].url, db, 0, "--protocol", "3.1.1")]
            time.sleep(3)
            out["nats_cluster_1_collector"] = asyncio.run(storm(
                Fleet(cluster.ports, k, v5_share=0.0), db, backlog))
            stop(procs)
    finally:
        cluster.stop()
    return out


async def fault_run(fault: Callable[[], None], ports: list[int], db: str,
                    collector_url: str) -> dict[str, Any]:
    """200 stores at 10 events/s; the collector away for 5 s before the fault, so that what
    the broker acknowledged waits in the collector's session across the fault (where a
    single NATS node lost messages), and back after it."""
    procs = [collector(collector_url, db, 0, "--protocol", "3.1.1")]
    await asyncio.sleep(3)
    fleet = Fleet(ports, 200, v5_share=0.0, rate=10.0, backoff_max_s=5.0)
    try:
        await fleet.start(ramp_s=2.0)
        fleet.feed()
        await asyncio.sleep(3)
        await asyncio.to_thread(stop, procs)
        await asyncio.sleep(5)
        fleet.feed(False)
        await fleet.drain(120)  # everything acknowledged, queued for the collector
        await asyncio.to_thread(fault)
        procs = [collector(collector_url, db, 0, "--protocol", "3.1.1")]
        await fleet.drain(300)
        await fleet.stop()
        with psycopg.connect(db, autocommit=True) as conn:
            deadline = time.monotonic() + 120
            while (not (result := check(conn, fleet.stores)).exact
                   and time.monotonic() < deadline):
                await asyncio.sleep(0.5)
    finally:
        await asyncio.to_thread(stop, procs)
    return {"acknowledged": sum(s.stats.acked for s in fleet.stores),
            "committed": result.committed, "stored": result.stored,
            "lost_after_puback": result.lost_after_puback, "not_sent": result.not_yet_sent}


def faults(workdir: Path, rounds: int) -> dict[str, Any]:
    """Each fault `rounds` times on a fresh cluster; a single NATS node (R1) restarted with
    SIGTERM as the baseline, in the same run."""
    out: dict[str, Any] = {}
    runs = 0

    def on_cluster(name: str, fault: Callable[[NatsCluster], None]) -> None:
        nonlocal runs
        runs += 1
        cluster = NatsCluster(workdir / f"fault-{runs}")
        cluster.start()
        try:
            with database() as db:
                # the collector's session on n3 (n1 is the node the faults hit)
                out.setdefault(name, []).append(asyncio.run(fault_run(
                    lambda: fault(cluster), cluster.ports, db, cluster.nodes[2].url)))
        finally:
            cluster.stop()

    def whole(cluster: NatsCluster) -> None:
        for node in cluster.nodes:
            node.kill()
        time.sleep(2)
        cluster.start()

    for _ in range(rounds):
        on_cluster("node_sigkill_restart", lambda c: c.restart(0, hard=True))
        on_cluster("node_sigterm_restart", lambda c: c.restart(0, hard=False))
        on_cluster("whole_cluster_sigkill_restart", whole)
        runs += 1
        single = PrivateNats(workdir / f"single-{runs}")
        single.start()
        try:
            with database() as db:
                out.setdefault("baseline_single_node_sigterm_restart", []).append(asyncio.run(
                    fault_run(functools.partial(single.restart, hard=False), [single.port],
                              db, single.url)))
        finally:
            single.kill()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--stores", type=int, default=1000)
    ap.add_argument("--backlog", type=int, default=200,
                    help="events per store waiting (200: ~9 store hours at the soak's rate)")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each fault")
    ap.add_argument("--only", choices=["ingest", "storm", "faults"])
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        work = Path(tmp)
        if args.only in (None, "ingest"):
            out["ingest"] = ingest(args.events, work)
            print(json.dumps(out["ingest"]), flush=True)
        if args.only in (None, "storm"):
            out["storm"] = storms(args.stores, args.backlog, work)
            print(json.dumps(out["storm"]), flush=True)
        if args.only in (None, "faults"):
            out["faults"] = faults(work, args.rounds)
            print(json.dumps(out["faults"]), flush=True)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
