"""erase-subject: a subject's events still waiting in the outbox, its loyalty card and the
cached upstream documents that mention it are removed, the answer says how much, and a scan
of every database file (WAL included) finds nothing of the subject afterwards."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

from agent.bus.client import BusClient
from agent.checkin import StoreDb
from agent.config import load_config
from agent.storelink.cache import LinkCache
from agent.storelink.docs import Doc
from tests.conftest import CLI, agent_in_thread, wait_for, write_config

SUBJECT = "loy0012345678"
APP = "app:2f234454-cf6d-4a0f-adf2-f4911ba9ffa6:1:9"


def test_erase_subject_leaves_nothing(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path / "config.toml", url="",
                            extra=f'[kiosk]\nstore_db = "{tmp_path / "store.db"}"\n'
                                  '[metrics]\nlisten = ""\n')
    cfg = load_config(str(cfg_path))
    db = StoreDb(tmp_path / "store.db")
    db.replace("loyalty", [{"card": SUBJECT, "first_name": "Gil", "points": 5},
                           {"card": "loy0099999999", "first_name": "Ida", "points": 1}])
    db.close()
    cache = LinkCache(tmp_path / "store.db")
    cache.store("loyalty", "all", 3, b'{"rows":[{"card":"' + SUBJECT.encode() + b'"}]}')
    cache.store("orders", "all", 4, b'{"rows":[{"order_id":"A-1"}]}')
    cache.close()
    with agent_in_thread(cfg) as (agent, loop):
        wait_for(lambda: (tmp_path / "agent.sock").exists(), 20, what="agent up")
        with BusClient(tmp_path / "agent.sock") as bus:
            bus.emit([{"type": "o2o.kiosk.checkin", "data": {"card": SUBJECT, "n": i}}
                      for i in range(3)])
            # an opted-in app user with a consent record and presence waiting upstream
            bus.emit([{"type": "o2o.ble.presence", "data": {"id": APP, "action": a,
                                                            "kind": "app", "zone": "near"}}
                      for a in ("enter", "zone")])
            bus.emit([{"type": "o2o.kiosk.view", "data": {"page": "p", "n": i}}
                      for i in range(2)])

        def erase(subject: str) -> dict[str, Any]:
            """The command as upstream's arrives: run on the agent's event loop (it does
            its database work off the loop and answers when done)."""
            async def run() -> dict[str, Any]:
                return dict(await agent.commands.handlers()["erase-subject"](
                    {"subject": subject}))
            return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=30)

        result = erase(SUBJECT)
        assert result == {"removed": {"outbox_events": 3, "loyalty": 1, "orders": 0,
                                      "appointments": 0, "cached_documents": 1,
                                      "consent_records": 0, "open_visits": 0,
                                      "presence_tracks": 0, "staff_alerts": 0,
                                      "personal_offers": 0, "visitors": 0}}
        # the app user, with a consent record
        agent.privacy.apply_consent(Doc("consent", "store-1", "all", 1, 0.0, 1e12, {
            "mode": "increment", "rows": [{"subject": APP, "state": "granted"}]}, "k"))
        app = erase(APP)
        assert app == {"removed": {"outbox_events": 2, "loyalty": 0, "orders": 0,
                                   "appointments": 0, "cached_documents": 0,
                                   "consent_records": 1, "open_visits": 1,
                                   "presence_tracks": 0, "staff_alerts": 0,
                                   "personal_offers": 0, "visitors": 0}}
        # heard again by the agent's own scanner: not reported again
        loop.call_soon_threadsafe(agent.capture, "o2o.ble.presence",
                                  {"id": APP, "action": "enter", "kind": "app"})
        wait_for(lambda: agent.privacy.withheld == 1, 10, what="the presence withheld")
        # ... or sent by a bus client (a scanner of the store's own): withheld in its place,
        # the rest of the batch kept
        with BusClient(tmp_path / "agent.sock") as bus:
            reply = bus.request({"op": "emit", "events": [
                {"type": "o2o.kiosk.view", "data": {"page": "after"}},
                {"type": "o2o.ble.presence", "data": {"id": APP, "action": "enter",
                                                      "kind": "app"}}]})
        assert reply["ids"][0] and reply["ids"][1] is None and reply["withheld"] == 1
        assert reply["seqs"][0] and reply["seqs"][1] is None
        assert agent.privacy.withheld == 2
        cli = subprocess.run([*CLI, "emit", "--config", str(cfg_path), "--type",
                              "o2o.ble.presence", "--data",
                              json.dumps({"id": APP, "action": "exit", "kind": "app"})],
                             capture_output=True, text=True, timeout=60, check=False)
        assert (cli.returncode, cli.stdout) == (0, "withheld\n"), cli.stderr
    files = [p for p in tmp_path.iterdir() if p.name.startswith(("outbox.db", "store.db"))]
    assert {p.name for p in files} >= {"outbox.db", "store.db"}
    for p in files:
        assert SUBJECT.encode() not in p.read_bytes(), p.name
        assert APP.encode() not in p.read_bytes(), p.name
    # the rest is still there
    db = StoreDb(tmp_path / "store.db")
    assert db.loyalty("loy0099999999") is not None
    db.close()
    assert LinkCache(tmp_path / "store.db").document("orders", "all") is not None
