"""`o2o-edge doctor` on the store database: the owner's read-only check, so a file of a newer
release is told as such (the agent refuses to start on it), not passed as intact."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

from agent.config import Config
from agent.doctor.system import check_store_db
from agent.storedb import StoreDatabase
from agent.storedb.migrations import MIGRATIONS


def _cfg(store_db: Path) -> Config:
    cfg = Config()
    return dataclasses.replace(cfg, kiosk=dataclasses.replace(cfg.kiosk, store_db=store_db))


def test_an_intact_file_of_this_release_is_ok(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    StoreDatabase.open(path).close()
    [finding] = check_store_db(_cfg(path))
    assert finding.level == "ok" and "intact" in finding.message


def test_a_file_of_a_newer_release_fails_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    StoreDatabase.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {MIGRATIONS[-1].version + 1}")
    conn.close()
    [finding] = check_store_db(_cfg(path))
    assert finding.level == "fail"
    assert "newer o2o-edge" in finding.message and str(path) in finding.message
    assert "install the o2o-edge version that wrote it again" in finding.fix


def test_a_damaged_file_fails_and_says_the_agent_moves_it_aside(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(b"SQLite format 3\0" + b"\xff" * 4096)
    [finding] = check_store_db(_cfg(path))
    assert finding.level == "fail" and "move the file aside" in finding.fix
