"""Tills and offer codes: what a sale costs from the till's request to the committed event,
and what verifying an offer code costs, each against a baseline measured in the same run.

    python -m tests.bench.bench_pos [--requests N] [--codes N] [--json FILE]

1. POST /v1/pos/sale -> the answer, which the agent sends once the sale (and its
   redemption) is committed to the outbox: p50/p99 over N sales on one keep-alive
   connection, against a one-event bus emit -> its commit (the same agent, the same run).
   A resent receipt (answered from store.db, nothing committed) is measured too.
2. Offer code verification (parse, Ed25519 signature, expiry, store): us per code, against a
   pickup code's verification and a bare Ed25519 verify of the same size.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bus.client import BusClient
from agent.errors import AgentError
from agent.keys import public_key_text
from drivers.qr import offer, pickup

ROOT = Path.cwd()
TOKEN = "bench-till-token-0123456789abcdef"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def figures(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(ms), 2), "p99_ms": round(pct(ms, 0.99), 2),
            "max_ms": round(max(ms), 2)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_agent(work: Path, key: Ed25519PrivateKey, port: int) -> subprocess.Popen[bytes]:
    cfg = work / "config.toml"
    cfg.write_text(f"""
[device]
store = "store-1"
id = "bench"
[outbox]
path = "{work / 'outbox.db'}"
[mqtt]
url = ""
[bus]
socket = "{work / 'agent.sock'}"
[kiosk]
store_db = "{work / 'store.db'}"
[metrics]
listen = ""
[qr]
offer_public_keys = ["{public_key_text(key.public_key())}"]
[pos]
enabled = true
listen = ["127.0.0.1:{port}"]
tokens = ["bench={hashlib.sha256(TOKEN.encode()).hexdigest()}"]
rate_per_min = 60000
""")
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "run", "--config",
                             str(cfg)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=(work / "agent.log").open("wb"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with BusClient(work / "agent.sock", timeout=2) as c:
                c.request({"op": "ping"})
            return proc
        except (OSError, AgentError):  # not up yet
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the agent did not start: {(work / 'agent.log').read_text()[-2000:]}")


def bench_requests(n: int) -> dict[str, Any]:
    key = Ed25519PrivateKey.generate()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        proc = start_agent(work, key, port)
        try:
            emit_ms = []
            with BusClient(work / "agent.sock", timeout=30) as bus:
                for i in range(n):
                    t = time.perf_counter()
                    bus.emit([{"type": "o2o.kiosk.view", "data": {"page": f"p{i}"}}])
                    emit_ms.append((time.perf_counter() - t) * 1000)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

            def post(body: dict[str, Any]) -> float:
                t = time.perf_counter()
                conn.request("POST", "/v1/pos/sale", json.dumps(body), headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    raise SystemExit(f"sale refused: {resp.status}")
                return (time.perf_counter() - t) * 1000

            expires = int(time.time()) + 3600
            sale_ms, offer_ms, resent_ms = [], [], []
            for i in range(n):
                base = {"receipt": f"R-{i}", "total": 1250, "currency": "EUR",
                        "payment": "card", "lines": [{"sku": "COF-1", "qty": 1}]}
                sale_ms.append(post(base))
                code = offer.make_code(key, f"C-{i}", "bench", "coffee-20", expires)
                offer_ms.append(post({**base, "receipt": f"O-{i}", "offers": [code]}))
                resent_ms.append(post(base))
            conn.close()
        finally:
            proc.terminate()
            proc.wait(30)
    s, e = figures(sale_ms), figures(emit_ms)
    return {"requests": n, "bus_emit_committed": e, "pos_sale_committed": s,
            "pos_sale_with_offer_committed": figures(offer_ms),
            "pos_sale_resent": figures(resent_ms),
            "ratio_p99_sale_vs_emit": round(s["p99_ms"] / e["p99_ms"], 2),
            "ratio_p50_sale_vs_emit": round(s["p50_ms"] / e["p50_ms"], 2)}


def bench_verify(n: int) -> dict[str, Any]:
    key = Ed25519PrivateKey.generate()
    pub = [key.public_key()]
    expires = int(time.time()) + 3600
    codes = [offer.make_code(key, f"C-{i:05d}", "spring-coffee", "coffee-20", expires,
                             ("store-1",)) for i in range(n)]
    pickups = [pickup.make_code(key, f"A-{i:05d}", expires, "store-1") for i in range(n)]
    message = b"o2o-offer" + bytes(80)
    signature = key.sign(message)

    def per_code(fn: Any, items: list[Any]) -> float:
        t = time.perf_counter()
        for item in items:
            fn(item)
        return (time.perf_counter() - t) / len(items) * 1e6

    now = time.time()
    offer_us = per_code(lambda c: offer.verify_code(c, pub, now, "store-1"), codes)
    pickup_us = per_code(lambda c: pickup.verify_code(c, pub, now, "store-1"), pickups)
    raw_us = per_code(lambda _: pub[0].verify(signature, message), codes)
    return {"codes": n, "offer_verify_us": round(offer_us, 1),
            "pickup_verify_us": round(pickup_us, 1), "ed25519_verify_us": round(raw_us, 1),
            "ratio_offer_vs_pickup": round(offer_us / pickup_us, 2),
            "ratio_offer_vs_ed25519": round(offer_us / raw_us, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--codes", type=int, default=2000)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    out = {"verify": bench_verify(args.codes), "requests": bench_requests(args.requests)}
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
