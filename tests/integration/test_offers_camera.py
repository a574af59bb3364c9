"""Offer codes at the kiosk's camera and at the till, against the agent process: a code shown
to the camera is judged offline (expired, other store, forged) and against the one-time ledger
(used), its campaign becomes the app visit's; the till's sale with that code is linked to the
visit and the campaign, and the redemption is recorded once."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bus.client import BusClient
from agent.keys import public_key_text
from drivers.qr.offer import make_code
from simulators.camera_files import blank, write_video
from simulators.qr_frames import make_frame
from tests.conftest import CLI, ROOT, AgentProcess, wait_for, write_config
from tests.integration.test_pos import SALE, TOKEN, free_port, post

KEY = Ed25519PrivateKey.generate()


def offer(code_id: str, expires_in: int = 3600, stores: tuple[str, ...] = ("store-1",),
          key: Ed25519PrivateKey = KEY) -> str:
    return make_code(key, code_id, "spring-coffee", "coffee-20", int(time.time()) + expires_in,
                     stores)


def config(tmp_path: Path, port: int, camera: str) -> Path:
    import hashlib

    return write_config(tmp_path / "config.toml", url="", extra=f"""
[kiosk]
store_db = "{tmp_path / 'store.db'}"

[qr]
enabled = {'true' if camera else 'false'}
camera = "{camera or '0'}"
fps_limit = 30
offer_public_keys = ["{public_key_text(KEY.public_key())}"]

[pos]
enabled = true
listen = ["127.0.0.1:{port}"]
tokens = ["till-1={hashlib.sha256(TOKEN.encode()).hexdigest()}"]
""")


def test_offers_at_the_camera_and_the_till(tmp_path: Path,
                                           agent_factory: list[AgentProcess]) -> None:
    port = free_port()
    used, fresh = offer("C-1"), offer("C-2")
    # a first day: C-1 redeemed at the till
    cfg = config(tmp_path, port, "")
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    assert post(port, "/v1/offers/redeem", {"code": used, "receipt": "R-0"})[0] == 200
    assert agent.stop() == 0

    shown = [fresh, used, offer("C-3", expires_in=-60), offer("C-4", stores=("store-9",)),
             offer("C-5", key=Ed25519PrivateKey.generate())]
    frames = [blank((640, 480))] * 60  # 2 s: the app shopper arrives first
    for i, payload in enumerate(shown):
        frames += [make_frame(payload, (640, 480), ("jpeg",), seed=i * 100 + k).image
                   for k in range(40)]
        frames += [blank((640, 480))] * 15
    video = tmp_path / "counter.avi"
    write_video(video, frames, fps=30)
    cfg = config(tmp_path, port, str(video))
    agent = AgentProcess(cfg)
    agent_factory.append(agent)
    agent.start()
    app = {"id": "app:2f234454-cf6d-4a0f-adf2-f4911ba9ffa6:77:3", "kind": "app"}
    with BusClient(tmp_path / "agent.sock") as bus:
        bus.emit([{"type": "o2o.ble.presence", "data": {**app, "action": "enter",
                                                        "zone": "immediate"}}])
    wait_for(lambda: agent.status()["qr"]["camera"]["state"] == "ended", 60,
             what=lambda: f"the video played: {agent.status()['qr']}")
    # the shopper walks to the till; the till redeems the fresh code with the sale
    status, body, _ = post(port, "/v1/pos/sale", {**SALE, "receipt": "R-1", "offers": [fresh]})
    assert status == 200 and body["offers"][0]["state"] == "redeemed"
    assert post(port, "/v1/pos/sale", {**SALE, "receipt": "R-1", "offers": [fresh]})[1] == body
    assert agent.stop() == 0

    res = subprocess.run([*CLI, "outbox", "export", "--config", str(cfg)], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    events: list[dict[str, Any]] = [json.loads(line) for line in res.stdout.splitlines()]
    scans = [e["data"] for e in events if e["type"] == "o2o.qr.scan"]
    assert [(s["class"], s.get("reason")) for s in scans] == [
        ("offer", None), ("rejected", "offer-used"), ("rejected", "offer-expired"),
        ("rejected", "offer-other-store"), ("rejected", "offer-unknown-key")]
    visit = next(e["data"]["visit"] for e in events if e["type"] == "o2o.ble.presence")
    assert scans[0]["visit"] == visit and scans[0]["campaign"] == "spring-coffee"
    assert scans[0]["offer"] == "coffee-20"
    sales = [e["data"] for e in events if e["type"] == "o2o.pos.sale"]
    assert len(sales) == 1
    assert (sales[0]["visit"], sales[0]["campaign"]) == (visit, "spring-coffee")
    assert sales[0]["visit_campaign"] == "spring-coffee"
    redeemed = [e["data"] for e in events if e["type"] == "o2o.offer.redeemed"]
    # the first day's redemption, then the till's with the sale: each once
    assert [(r["receipt"], r["campaign"]) for r in redeemed] == [("R-0", "spring-coffee"),
                                                                 ("R-1", "spring-coffee")]
    for code_id in ("C-1", "C-2", "C-5"):  # code ids leave as keyed hashes only
        assert f'"{code_id}"' not in res.stdout
