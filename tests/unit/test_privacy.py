"""Consent withdrawn stops an identifier being reported; the retention sweep empties every
local table of what is older than the limit and keeps the rest."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.checkin import StoreDb
from agent.kpi import Kpis
from agent.privacy import Privacy
from agent.storelink.cache import LinkCache
from agent.storelink.docs import Doc, DocRefused

APP = "app:2f23:77:3"


def consent(mode: str, rows: list[dict[str, str]]) -> Doc:
    return Doc("consent", "s", "all", 1, 0.0, 1e12, {"mode": mode, "rows": rows}, "k")


def test_withdrawn_consent_withholds_presence_and_survives_restart(tmp_path: Path) -> None:
    p = Privacy(tmp_path / "store.db")
    enter = {"id": APP, "action": "enter", "kind": "app", "zone": "near"}
    assert p.allows("o2o.ble.presence", enter)
    p.apply_consent(consent("increment", [{"subject": APP, "state": "withdrawn"}]))
    assert not p.allows("o2o.ble.presence", enter) and p.withheld == 1
    assert p.allows("o2o.ble.presence", {**enter, "id": "app:other"})
    assert p.allows("o2o.ble.footfall", {"devices": 3})  # counting stays anonymous
    p.close()
    again = Privacy(tmp_path / "store.db")
    assert again.key_of(APP) in again.withdrawn
    again.apply_consent(consent("snapshot", [{"subject": APP, "state": "granted"}]))
    assert again.allows("o2o.ble.presence", enter)
    with pytest.raises(DocRefused, match="granted or withdrawn"):
        again.apply_consent(consent("increment", [{"subject": APP, "state": "maybe"}]))


def test_retention_sweep(tmp_path: Path) -> None:
    db = StoreDb(tmp_path / "store.db")
    now = time.time()
    db.replace("orders", [{"order_id": "A-1", "code": None, "first_name": "", "status":
                           "ready", "eta_min": 0, "store": ""}])
    db.replace("appointments", [
        {"appt_id": "P-old", "code": None, "first_name": "", "at": now - 100 * 86400,
         "service": ""},
        {"appt_id": "P-new", "code": None, "first_name": "", "at": now + 3600, "service": ""}])
    db.close()
    k = Kpis(tmp_path / "store.db")
    k.add_bodies([("o2o.nfc.tap", now - 100 * 86400, '{"data":{}}'),
                  ("o2o.nfc.tap", now, '{"data":{}}')])
    k.close()
    cache = LinkCache(tmp_path / "store.db")  # cached upstream documents, stamped now
    cache.store("orders", "all", 1, b'{"rows":[{"first_name":"Anna"}]}')
    cache.store("config", "all", 1, b'{"sections":{}}')
    cache.close()
    p = Privacy(tmp_path / "store.db")
    p.apply_consent(consent("increment", [{"subject": APP, "state": "withdrawn"},
                                          {"subject": "app:g:1:1", "state": "granted"}]))
    assert p.sweep(90, now=now) == {"orders": 0, "appointments": 1, "kpi_hourly": 1,
                                    "loyalty": 0, "consent": 0,
                                    "link_docs": 0, "visitors": 0}  # what is 100 days old
    db = StoreDb(tmp_path / "store.db")
    assert db.order("A-1") is not None
    db.close()
    later = p.sweep(90, now=now + 91 * 86400)  # 91 days on, the rest is old too
    # ... but a withdrawal stays, and so does the device's own configuration
    assert later == {"orders": 1, "appointments": 1, "kpi_hourly": 1, "loyalty": 0,
                     "consent": 1, "link_docs": 1, "visitors": 0}
    assert p.key_of(APP) in Privacy(tmp_path / "store.db").withdrawn  # read back from disk
    cache = LinkCache(tmp_path / "store.db")
    assert cache.document("config", "all") is not None
    assert cache.document("orders", "all") is None
    cache.close()
    db = StoreDb(tmp_path / "store.db")
    assert db.order("A-1") is None
    db.close()


def test_consent_records_never_name_the_subject_and_erasure_keeps_it_unreported(
        tmp_path: Path) -> None:
    import sqlite3

    # a record from before identifiers were hashed is hashed in place on open
    db = sqlite3.connect(tmp_path / "store.db")
    db.execute("CREATE TABLE consent (subject TEXT PRIMARY KEY, state TEXT NOT NULL, "
               "since REAL NOT NULL)")
    db.execute("INSERT INTO consent VALUES (?, 'withdrawn', 1.0)", ("app:old:1:1",))
    db.commit()
    db.close()
    p = Privacy(tmp_path / "store.db")
    assert not p.allows("o2o.ble.presence", {"id": "app:old:1:1", "kind": "app"})
    p.apply_consent(consent("increment", [{"subject": APP, "state": "granted"}]))
    enter = {"id": APP, "action": "enter", "kind": "app"}
    assert p.allows("o2o.ble.presence", enter)
    assert p.erase(APP) == 1 and p.erase("app:never:1:1") == 0
    assert not p.allows("o2o.ble.presence", enter)  # erased: not reported again
    p.close()
    raw = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.name.startswith("store.db"))
    assert b"app:old" not in raw and APP.encode() not in raw and b"app:never" not in raw
    # the key is the device's: another device cannot tell who a record is about
    other = Privacy(tmp_path / "other.db")
    assert other.key_of(APP) != Privacy(tmp_path / "store.db").key_of(APP)
