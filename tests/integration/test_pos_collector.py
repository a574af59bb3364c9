"""A store day's tills upstream: the till simulator replays a receipts file into the agent's
endpoint (a receipt resent, an offer used twice, a till with a wrong token) while an app
shopper is in the store after scanning a campaign code; the collector on a private Mosquitto
receives the sale once with its visit and campaign, and the redemption once."""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from agent.bus.client import BusClient
from agent.collector.store import EventStore
from agent.keys import public_key_text
from simulators.pos import PosSimulator, load_receipts
from tests.conftest import CLI, ROOT, AgentProcess, wait_for, write_config
from tests.integration.test_offers_camera import KEY, offer
from tests.integration.test_pos import SALE, TOKEN, free_port


def test_the_collector_gets_each_sale_and_redemption_once(
        tmp_path: Path, mosquitto: Any, agent_factory: list[AgentProcess]) -> None:
    port = free_port()
    db = tmp_path / "collected.db"
    collector = subprocess.Popen([*CLI, "collect", "--broker", mosquitto.url, "--db",
                                  f"sqlite:///{db}", "--client-id", "pos-collector"], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        cfg = write_config(tmp_path / "config.toml", url=mosquitto.url, extra=f"""
[kiosk]
store_db = "{tmp_path / 'store.db'}"
[qr]
offer_public_keys = ["{public_key_text(KEY.public_key())}"]
[pos]
enabled = true
listen = ["127.0.0.1:{port}"]
tokens = ["till-1={hashlib.sha256(TOKEN.encode()).hexdigest()}"]
""")
        agent = AgentProcess(cfg)
        agent_factory.append(agent)
        agent.start()
        app = {"id": "app:2f234454-cf6d-4a0f-adf2-f4911ba9ffa6:77:3", "kind": "app"}
        with BusClient(tmp_path / "agent.sock") as bus:
            bus.emit([{"type": "o2o.ble.presence", "data": {**app, "action": "enter",
                                                            "zone": "immediate"}},
                      {"type": "o2o.qr.scan", "data": {"class": "campaign",
                                                       "utm": {"campaign": "winter-sale"}}},
                      {"type": "o2o.ble.presence", "data": {**app, "action": "zone",
                                                            "zone": "far"}}])
        code = offer("C-7")
        sale = {**SALE, "offers": [code]}
        lines = [
            {"at": 0, "action": "sale", "request": sale},
            {"at": 0.2, "action": "sale", "request": sale},  # the till resends
            {"at": 0.4, "action": "sale", "request": {**SALE, "receipt": "R-2",
                                                      "offers": [code]}},
            {"at": 0.6, "action": "refund", "request": {**SALE, "receipt": "R-3",
                                                        "original": "R-1"}},
        ]
        receipts = tmp_path / "receipts.jsonl"
        receipts.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
        till = PosSimulator(f"http://127.0.0.1:{port}", TOKEN)
        posted = till.replay_file(receipts, speed=1.0)
        assert [p.status for p in posted] == [200, 200, 200, 200]
        assert [p.replayed for p in posted] == [False, True, False, False]
        assert posted[1].body == posted[0].body
        assert posted[2].body["offers"][0]["reason"] == "offer-used"
        intruder = PosSimulator(f"http://127.0.0.1:{port}", "not-the-token")
        assert intruder.replay(load_receipts([json.dumps(lines[0])]))[0].status == 401

        store = EventStore(f"sqlite:///{db}")
        wait_for(lambda: store.count("o2o.pos.refund") == 1, 60,
                 what=lambda: f"{store.count()} events collected")
        assert agent.stop() == 0
        store.close()
    finally:
        collector.send_signal(signal.SIGTERM)
        _, err = collector.communicate(timeout=30)
    assert "Traceback" not in err, err
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT type, body FROM events").fetchall()
    data: dict[str, list[dict[str, Any]]] = {}
    for etype, body in rows:
        data.setdefault(etype, []).append(json.loads(body)["data"])
    visit = data["o2o.ble.presence"][0]["visit"]
    assert [s["receipt"] for s in data["o2o.pos.sale"]] == ["R-1", "R-2"]
    first = data["o2o.pos.sale"][0]
    assert (first["visit"], first["campaign"], first["visit_campaign"]) == (
        visit, "spring-coffee", "winter-sale")
    assert "campaign" not in data["o2o.pos.sale"][1]  # its offer was refused: used
    assert [r["receipt"] for r in data["o2o.offer.redeemed"]] == ["R-1"]
    assert [r["reason"] for r in data["o2o.offer.refused"]] == ["offer-used"]
    assert data["o2o.pos.refund"][0]["original"] == "R-1"
