"""The catalog where staff look: `o2o-edge status` (its size, snapshot, version, how old its
prices are, parts still to come) and `o2o-edge doctor` (empty, fresh, stale, an older store
database), read from store.db opened read-only."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

from agent.catalog import CatalogStore
from agent.cli.commands import _catalog_lines
from agent.config import Config
from agent.doctor.catalog import STALE_S, check_catalog
from agent.storedb import StoreDatabase
from agent.storedb.migrations import MIGRATIONS
from agent.storelink.docs import Doc

NOW = 1_796_000_000.0
MUG = {"sku": "MUG-1", "gtin": "4006381333931", "name": {"en": "Blue mug"}, "price": 1299,
       "currency": "EUR", "stock": 3}


def _cfg(tmp_path: Path) -> Config:
    cfg = Config()
    return dataclasses.replace(
        cfg, kiosk=dataclasses.replace(cfg.kiosk, store_db=tmp_path / "store.db"),
        bus=dataclasses.replace(cfg.bus, socket=tmp_path / "no-agent.sock"))


def _doc(version: int, body: dict[str, Any], issued: float) -> Doc:
    return Doc("catalog", "store-1", "all", version, issued, issued + 86400, body, "k")


def test_status_lines(tmp_path: Path) -> None:
    store = StoreDatabase.open(tmp_path / "store.db")
    catalog = CatalogStore(store, clock=lambda: NOW)
    st: Any = {"catalog": catalog.status()}
    assert _catalog_lines(st) == ["catalog    empty (no catalog document applied yet)"]
    catalog.apply(_doc(3, {"mode": "snapshot", "snapshot": "day-1",
                           "products": [MUG, {**MUG, "sku": "MUG-2", "gtin": None}]},
                       NOW - 7200))
    catalog.apply(_doc(4, {"mode": "increment", "products": [{**MUG, "price": 999}]},
                       NOW - 60))
    st = {"catalog": catalog.status(waiting_parts=2)}
    assert st["catalog"]["prices_age_s"] == {"oldest": 7200.0, "newest": 60.0}
    assert _catalog_lines(st) == [
        "catalog    2 products  snapshot day-1 (v4)  prices 60s old (the oldest 2.0h)",
        "           a new snapshot waits for 2 parts from the broker"]
    store.close()
    # a new CatalogStore (the agent restarted) knows it from store.db
    store = StoreDatabase.open(tmp_path / "store.db")
    again = CatalogStore(store, clock=lambda: NOW).status()
    assert (again["products"], again["snapshot"], again["version"]) == (2, "day-1", 4)
    store.close()


def test_doctor(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    [none] = check_catalog(cfg)
    assert none.level == "skip" and "no store database" in none.message
    # a file of a release before the catalog's state: the agent brings it up to date
    StoreDatabase.open(tmp_path / "store.db", migrations=MIGRATIONS[:4]).close()
    [older] = check_catalog(cfg)
    assert older.level == "skip" and "next start" in older.message
    store = StoreDatabase.open(tmp_path / "store.db")
    [empty] = check_catalog(cfg)
    assert empty.level == "ok" and "empty" in empty.message
    CatalogStore(store, clock=lambda: NOW).apply(
        _doc(7, {"mode": "snapshot", "snapshot": "day-3", "products": [MUG]}, NOW - 3600))
    store.close()
    [fresh] = check_catalog(cfg, now=NOW)
    assert (fresh.level, fresh.message) == (
        "ok", "1 product, snapshot day-3 (v7), newest prices 60 min old")
    [stale] = check_catalog(cfg, now=NOW + STALE_S)
    assert stale.level == "warn" and "newest prices 3 days old" in stale.message
    assert "/all/catalog" in stale.fix and "o2o-edge status" in stale.fix
    # read-only: the doctor changed nothing
    conn = sqlite3.connect(tmp_path / "store.db")
    assert conn.execute("SELECT COUNT(*) FROM catalog").fetchone()[0] == 1
    conn.close()
