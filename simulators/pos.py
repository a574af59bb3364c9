"""A store's till, simulated: replays a receipts file into the agent's POS endpoint over real
HTTP, as a till would post them (agent/pos/http.py; the requests are agent/contracts/pos.py).

The receipts file is JSON lines, one request each, in time order:

    {"at": 12.5, "action": "sale", "request": {"receipt": "R-1", "total": 1250, ...}}
    {"at": 13.0, "action": "sale", "request": {...the same...}}      a till that resends
    {"at": 40, "action": "offer-redeem", "request": {"code": "O2OF1:...", "receipt": "R-2"}}

`at` is seconds from the start of the replay (divided by the speed); `action` is sale,
refund, offer-check or offer-redeem. Each answer is kept with its status, whether the agent
said it was a replay, and how long the request took.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from simulators.errors import ScenarioError

PATHS: Final = {"sale": "/v1/pos/sale", "refund": "/v1/pos/refund",
                "offer-check": "/v1/offers/check", "offer-redeem": "/v1/offers/redeem"}
MAX_LINE: Final = 64 * 1024


@dataclass(frozen=True)
class Receipt:
    at: float
    action: str
    request: dict[str, Any]


@dataclass(frozen=True)
class Posted:
    receipt: Receipt
    status: int
    body: dict[str, Any]
    replayed: bool
    seconds: float


def load_receipts(lines: Iterable[str], where: str = "receipts") -> list[Receipt]:
    """The receipts of a file's lines; ScenarioError naming the line of the first bad one."""
    out: list[Receipt] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE:
            raise ScenarioError(f"{where}:{n}: a line over {MAX_LINE} bytes")
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise ScenarioError(f"{where}:{n}: not JSON ({exc})") from None
        if not isinstance(item, dict) or set(item) - {"at", "action", "request"}:
            raise ScenarioError(f'{where}:{n}: an object {{"at", "action", "request"}}')
        at, action, request = item.get("at", 0), item.get("action"), item.get("request")
        if isinstance(at, bool) or not isinstance(at, int | float) or not 0 <= at <= 86400:
            raise ScenarioError(f"{where}:{n}: at must be seconds from 0 to 86400")
        if action not in PATHS:
            raise ScenarioError(f"{where}:{n}: action must be one of {', '.join(PATHS)}")
        if not isinstance(request, dict):
            raise ScenarioError(f"{where}:{n}: request must be an object")
        if out and at < out[-1].at:
            raise ScenarioError(f"{where}:{n}: receipts must be in time order")
        out.append(Receipt(float(at), action, request))
    return out


class PosSimulator:
    def __init__(self, url: str, token: str, timeout: float = 15.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """`url`: the endpoint's base, http://HOST:PORT."""
        if not url.startswith(("http://", "https://")):
            raise ScenarioError(f"the till posts to an http:// or https:// URL, not {url!r}")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep

    def post(self, receipt: Receipt) -> Posted:
        # http(s) only (checked in __init__), to the store's own endpoint
        req = urllib.request.Request(  # noqa: S310
            self.url + PATHS[receipt.action], method="POST",
            data=json.dumps(receipt.request).encode(),
            headers={"Content-Type": "application/json",
                     "Authorization": f"Bearer {self.token}"})
        started = self.clock()
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                status, raw, headers = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as exc:
            status, raw, headers = exc.code, exc.read(), exc.headers
        seconds = self.clock() - started
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"ok": False, "reason": "not-json", "text": raw[:200].decode("latin-1")}
        return Posted(receipt, status, body if isinstance(body, dict) else {"body": body},
                      headers.get("Idempotent-Replayed") == "true", seconds)

    def replay(self, receipts: list[Receipt], speed: float = 1.0) -> list[Posted]:
        """Post each receipt at its time (from now, `speed` times faster)."""
        start = self.clock()
        out = []
        for r in receipts:
            wait = start + r.at / speed - self.clock()
            if wait > 0:
                self.sleep(wait)
            out.append(self.post(r))
        return out

    def replay_file(self, path: Path, speed: float = 1.0) -> list[Posted]:
        with path.open(encoding="utf-8") as fh:
            return self.replay(load_receipts(fh, str(path)), speed)


def free_tcp_port() -> int:
    """A loopback TCP port free now, for the agent's tills endpoint in a scenario."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    """python -m simulators.pos RECEIPTS --url http://HOST:PORT --token-file FILE [--speed N]:
    a till replaying a receipts file into a running agent's endpoint; one JSON line per
    answer (status, replayed, ms, body). The token is read from a file (or O2O_TILL_TOKEN),
    never from the command line, where other users of the machine could read it."""
    import argparse
    import os
    import sys

    p = argparse.ArgumentParser(prog="python -m simulators.pos", description=main.__doc__)
    p.add_argument("receipts", type=Path, help="JSON lines: {at, action, request}")
    p.add_argument("--url", default="http://127.0.0.1:8470", help="the endpoint's base URL")
    p.add_argument("--token-file", type=Path, help="a file holding the till's token")
    p.add_argument("--speed", type=float, default=1.0, help="times faster than `at` says")
    args = p.parse_args(argv)
    try:
        token = (args.token_file.read_text().strip() if args.token_file
                 else os.environ.get("O2O_TILL_TOKEN", ""))
        if not token:
            raise ScenarioError("give the till's token: --token-file FILE or O2O_TILL_TOKEN")
        if not 0 < args.speed <= 1e6:
            raise ScenarioError("--speed: more than 0 and at most 1000000")
        for posted in PosSimulator(args.url, token).replay_file(args.receipts, args.speed):
            print(json.dumps({"at": posted.receipt.at, "action": posted.receipt.action,
                              "status": posted.status, "replayed": posted.replayed,
                              "ms": round(posted.seconds * 1000, 1), "body": posted.body}),
                  flush=True)
    except (ScenarioError, OSError) as exc:
        print(f"python -m simulators.pos: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
