"""The doctor's catalog check: what the kiosk's product cards read — how many products, which
snapshot, how old the prices are — from store.db opened read-only (the agent may be running
or not), and a snapshot still waiting for parts, as the running agent says."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from typing import Final

from agent.bus.client import BusClient
from agent.config import Config
from agent.doctor import Finding, ok, skip, warn
from agent.errors import AgentError

# upstream issues the catalog at least daily where prices change; three days without a
# document means the store link or upstream's publisher has stopped, not a quiet week
STALE_S: Final = 3 * 86400


def _ago(seconds: float) -> str:
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def _waiting(cfg: Config) -> int:
    """The parts a snapshot waits for, as the running agent says (0 when it is not)."""
    with contextlib.suppress(AgentError, OSError), BusClient(cfg.bus.socket, timeout=5) as bus:
        st = bus.status()
        return int(st.get("catalog", {}).get("waiting_parts", 0))
    return 0


def check_catalog(cfg: Config, now: float | None = None) -> list[Finding]:
    path = cfg.kiosk.store_db
    if not path.exists():
        return [skip("catalog", "no store database yet: no catalog")]
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                                timeout=5)) as db:
            state = db.execute("SELECT snapshot, version FROM catalog_state").fetchone()
            n, newest = db.execute("SELECT COUNT(*), MAX(priced_at) FROM catalog").fetchone()
    except sqlite3.Error:  # an older schema (the agent brings it up to date) or damage
        return [skip("catalog", "the store database has no catalog yet (the agent adds it "
                     "at its next start); store-db says whether the file is sound")]
    found: list[Finding] = []
    waiting = _waiting(cfg)
    if waiting:
        found.append(warn("catalog", f"a new catalog snapshot waits for {waiting} of its parts",
                          "if this stays, check that upstream published every part retained "
                          f"on o2o/v1/{cfg.device.store}/all/blob/<sha256> (the snapshot "
                          "names them in parts_sha256)"))
    if state is None or not n:
        return [*found, ok("catalog", "empty: no catalog document applied yet (product cards "
                           "say a product is unknown)")]
    age = max(0.0, (time.time() if now is None else now) - float(newest))
    what = (f"{n} product{'' if n == 1 else 's'}, snapshot {state[0]} (v{state[1]}), newest "
            f"prices {_ago(age)} old")
    if age > STALE_S:
        return [*found, warn("catalog", what, "check that the uplink is connected (o2o-edge "
                             "status) and that upstream publishes catalog documents to "
                             f"o2o/v1/{cfg.device.store}/all/catalog")]
    return [*found, ok("catalog", what)]
