"""Repeat visits: an app's visit is a repeat when the same app visited before within the
retention limit; apps are kept by a keyed hash only, swept with the retention limit and
erased on request."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from agent.kpi import Kpis, summary
from agent.repeat_visits import RepeatVisits
from agent.storedb import StoreDatabase

HOUR = 1_795_000_000 // 3600 * 3600


def key_of(subject: str) -> str:
    return hashlib.sha256(b"device-key:" + subject.encode()).hexdigest()


def exit_of(app: str, at: float, kind: str = "app") -> tuple[str, float, str]:
    return ("o2o.ble.presence", at, json.dumps({"data": {
        "id": app, "kind": kind, "action": "exit", "dwell_s": 60}}))


def test_a_second_visit_of_an_app_is_a_repeat_until_swept_or_erased(tmp_path: Path) -> None:
    store = StoreDatabase.open(tmp_path / "store.db")
    repeat = RepeatVisits(store, key_of)
    kpis = Kpis(store, repeat=repeat)
    kpis.add_bodies([exit_of("app:a", HOUR + 10), exit_of("app:b", HOUR + 20),
                     exit_of("door", HOUR + 30, kind="beacon")])
    kpis.flush()
    kpis.add_bodies([exit_of("app:a", HOUR + 3600 + 5)])  # back an hour later
    kpis.flush()
    day = kpis.day(HOUR // 86400 * 86400)
    at = (HOUR % 86400) // 3600
    assert day["visits"][at] == 2 and day["visits"][at + 1] == 1
    assert day["visits.repeat"][at + 1] == 1 and sum(day["visits.repeat"]) == 1
    assert summary(day)["conversion.visit_repeat"] == round(1 / 3, 3)
    # only keyed hashes are kept
    conn = sqlite3.connect(tmp_path / "store.db")
    kept = dict(conn.execute("SELECT subject, visits FROM visitors").fetchall())
    conn.close()
    assert kept == {key_of("app:a"): 2, key_of("app:b"): 1}
    # erased: a's next visit is a first one; swept: so is b's
    assert repeat.erase_rows_of("app:a") == {"visitors": 1}
    assert repeat.retention_sweep(HOUR + 15) == {"visitors": 0}  # b was seen after that
    assert repeat.retention_sweep(HOUR + 7200) == {"visitors": 1}
    assert repeat.seen([("app:a", HOUR + 9000), ("app:b", HOUR + 9001),
                        ("app:a", HOUR + 9002)]) == [False, False, True]
    kpis.close()
    store.close()


def test_a_report_without_the_agent_counts_no_repeats_itself(tmp_path: Path) -> None:
    kpis = Kpis(tmp_path / "store.db")  # what `report` opens: it only reads
    kpis.add_bodies([exit_of("app:a", HOUR + 10), exit_of("app:a", HOUR + 20)])
    kpis.flush()
    assert "visits.repeat" not in kpis.day(HOUR // 86400 * 86400)
    kpis.close()
