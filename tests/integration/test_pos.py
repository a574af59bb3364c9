"""The tills' endpoint against the agent process, over real HTTP: refused without a token,
every bad field named, a receipt counted once, offers redeemed once (after a restart too),
each refusal with its reason, the sale linked to the app visit and the offer's campaign."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bus.client import BusClient
from agent.contracts import status as contract
from agent.errors import AgentError
from agent.keys import public_key_text
from drivers.qr.offer import PREFIX, make_code
from tests.conftest import CLI, ROOT, AgentProcess, write_config
from tests.integration.test_status_contract import _problems

TOKEN = "till-one-token-7d1f0c9a4b2e8f6a3c5d"
KEY = Ed25519PrivateKey.generate()
SALE = {"receipt": "R-1", "total": 1250, "currency": "EUR", "payment": "card",
        "lines": [{"gtin": "4006381333931", "qty": 2, "amount": 1250}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(port: int, path: str, body: Any, token: str | None = TOKEN,
         raw: bytes | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST",
                                 data=raw if raw is not None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback)
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def offer(code_id: str, expires_in: int = 3600, stores: tuple[str, ...] = ("store-1",),
          key: Ed25519PrivateKey = KEY) -> str:
    return make_code(key, code_id, "spring-coffee", "coffee-20", int(time.time()) + expires_in,
                     stores)


def forged(code: str) -> str:
    """The code with its code id changed ("C-5" -> "C-4") and its signature kept."""
    b32 = code[len(PREFIX):]
    raw = bytearray(base64.b32decode(b32 + "=" * (-len(b32) % 8)))
    raw[12] ^= 1  # version, key id and expiry are 9 bytes; then the id's length, "C", "-"
    return PREFIX + base64.b32encode(bytes(raw)).decode().rstrip("=")


def setup(tmp_path: Path) -> tuple[Path, int]:
    port = free_port()
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    cfg = write_config(tmp_path / "config.toml", url="", extra=f"""
[kiosk]
store_db = "{tmp_path / 'store.db'}"

[qr]
offer_public_keys = ["{public_key_text(KEY.public_key())}"]

[pos]
enabled = true
listen = ["127.0.0.1:{port}"]
tokens = ["till-1={digest}"]
max_body_bytes = 4096
""")
    return cfg, port


def exported(cfg: Path) -> list[dict[str, Any]]:
    res = subprocess.run([*CLI, "outbox", "export", "--config", str(cfg)], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_the_tills_endpoint(tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    cfg, port = setup(tmp_path)
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    # who may post
    status, body, headers = post(port, "/v1/pos/sale", SALE, token=None)
    assert status == 401 and body["reason"] == "unauthorized"
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert post(port, "/v1/pos/sale", SALE, token=TOKEN + "x")[0] == 401
    # what is refused, by field
    status, body, _ = post(port, "/v1/pos/sale", {**SALE, "total": "12.50", "currency": "€"})
    assert status == 422 and [e["field"] for e in body["errors"]] == ["total", "currency"]
    assert post(port, "/v1/pos/sale", None, raw=b"{not json")[0] == 400
    status, body, _ = post(port, "/v1/pos/sale", None, raw=b"x" * 5000)
    assert status == 413 and "max_body_bytes" in body["errors"][0]["error"]
    assert post(port, "/v1/nothing", {})[0] == 404

    # an app shopper at the kiosk scans nothing yet; the sale is theirs (the only visit)
    app = {"id": "app:2f234454-cf6d-4a0f-adf2-f4911ba9ffa6:77:3", "kind": "app"}
    with BusClient(tmp_path / "agent.sock") as bus:
        bus.emit([{"type": "o2o.ble.presence", "data": {**app, "action": "enter",
                                                        "zone": "near"}}])
    code = offer("C-1")
    status, body, _ = post(port, "/v1/pos/sale", {**SALE, "offers": [code],
                                                  "loyalty": "LOY0012345678"})
    assert status == 200 and body["offers"][0]["state"] == "redeemed"
    again = post(port, "/v1/pos/sale", {**SALE, "offers": [code], "loyalty": "LOY0012345678"})
    assert again[:2] == (200, body) and again[2]["Idempotent-Replayed"] == "true"
    status, conflict, _ = post(port, "/v1/pos/sale", {**SALE, "total": 1})
    assert status == 409 and conflict["reason"] == "receipt-conflict"
    # what `o2o-edge status` shows of the tills, as the contract declares it
    tills = agent.status()["pos"]
    assert (tills["sales"], tills["replayed"], tills["conflicts"], tills["refused"]) == (
        1, 1, 1, 1)
    assert (tills["endpoint"]["unauthorized"], tills["endpoint"]["too_large"]) == (2, 1)
    assert not _problems(tills, contract.PosStatus, "pos")
    # each refusal of an offer, with its reason, at the till
    for text, reason in ((code, "offer-used"), (offer("C-2", expires_in=-5), "offer-expired"),
                         (offer("C-3", stores=("store-2",)), "offer-other-store"),
                         (offer("C-4", key=Ed25519PrivateKey.generate()), "offer-unknown-key"),
                         (forged(offer("C-5")), "offer-bad-signature")):
        status, body, _ = post(port, "/v1/offers/redeem", {"code": text, "receipt": "R-2"})
        assert body["reason"] == reason and status == (409 if reason == "offer-used" else 422)
    assert agent.stop() == 0

    # after a restart the ledger still knows the code; a fresh one redeems once
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    assert post(port, "/v1/offers/check", {"code": code})[1]["reason"] == "offer-used"
    fresh = offer("C-9")
    assert post(port, "/v1/offers/redeem", {"code": fresh, "receipt": "R-3"})[0] == 200
    assert post(port, "/v1/offers/redeem", {"code": fresh, "receipt": "R-4"})[0] == 409
    assert agent.stop() == 0

    events = exported(cfg)
    sales = [e["data"] for e in events if e["type"] == "o2o.pos.sale"]
    assert len(sales) == 1  # posted twice, recorded once
    visit = next(e["data"]["visit"] for e in events if e["type"] == "o2o.ble.presence")
    assert sales[0]["visit"] == visit and sales[0]["campaign"] == "spring-coffee"
    assert sales[0]["pos"] == "till-1" and sales[0]["total"] == 1250
    redeemed = [e["data"] for e in events if e["type"] == "o2o.offer.redeemed"]
    assert [r["receipt"] for r in redeemed] == ["R-1", "R-3"]
    assert redeemed[0]["campaign"] == "spring-coffee" and redeemed[0]["visit"] == visit
    refused = sorted(e["data"]["reason"] for e in events if e["type"] == "o2o.offer.refused")
    assert refused == ["offer-bad-signature", "offer-expired", "offer-other-store",
                       "offer-unknown-key", "offer-used", "offer-used"]
    text = json.dumps(events)
    assert "LOY0012345678" not in text and "C-1" not in text and code not in text


def test_the_bus_takes_the_same_requests_and_refuses_raw_sales(
        tmp_path: Path, agent_factory: list[AgentProcess]) -> None:
    cfg, _ = setup(tmp_path)
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    with BusClient(tmp_path / "agent.sock") as bus:
        reply = bus.request({"op": "pos", "action": "sale", "request": SALE})
        assert reply["status"] == 200 and reply["answer"]["receipt"] == "R-1"
        assert bus.request({"op": "pos", "action": "sale", "request": SALE})["answer"] == \
            reply["answer"]
        bad = bus.request({"op": "pos", "action": "sale", "request": {**SALE, "lines": []}})
        assert bad["status"] == 422 and bad["answer"]["errors"][0]["field"] == "lines"
        with pytest.raises(AgentError) as refused:
            bus.emit([{"type": "o2o.pos.sale", "data": SALE}])
        assert "o2o.pos." in str(refused.value)
    assert agent.stop() == 0
    assert [e["data"]["pos"] for e in exported(cfg) if e["type"] == "o2o.pos.sale"] == ["bus"]
