"""store.db's schema versions: a fresh file, a file of the releases before versions (adopted
as version 1 with everything in it, then brought to the latest), a file of a newer release
(refused in one line), a step that fails (the file stays at the version before it), step 2
(staff alerts) on a version 1 file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest

from agent.checkin import StoreDb
from agent.errors import ConfigError
from agent.storedb import (
    MIGRATIONS,
    Migration,
    StoreDatabase,
    StoreDbTooNew,
    read_only_check,
)
from agent.storelink.cache import LinkCache
from tests.conftest import CLI, ROOT
from tests.unit.storedb.old_schema import OLD_SCHEMA

LATEST = MIGRATIONS[-1].version


def shape(path: Path) -> dict[str, object]:
    """Every table's columns (name, type, not null, default, key) and indexes."""
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: (conn.execute(f"PRAGMA table_info({t})").fetchall(),
                    sorted(r[1:] for r in conn.execute(f"PRAGMA index_list({t})")))
                for t in tables}
    finally:
        conn.close()


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def old_file(path: Path) -> None:
    """A store.db as the releases before versions left it: their SQL, some rows of each
    table group, user_version 0."""
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SCHEMA)
    conn.executescript("""
        INSERT INTO orders (order_id, code, first_name, status, updated, checked_in_at)
            VALUES ('A-1', 'K7Q2M9', 'Anna', 'ready', 1.0, 2.0);
        INSERT INTO loyalty VALUES ('loy1', 'Ben', 40, 1.0);
        INSERT INTO link_docs VALUES ('orders', 'all', 7, x'7b7d', 3.0);
        INSERT INTO link_versions VALUES ('orders', 'all', 7);
        INSERT INTO link_keys VALUES ('k1', 'ab', 1.0);
        INSERT INTO consent VALUES ('0123', 'withdrawn', 1.0);
        INSERT INTO privacy_meta VALUES ('key', x'00');
        INSERT INTO kpi_hourly VALUES (3600, 'taps', 5);
    """)
    conn.commit()
    conn.close()


def rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall())  # noqa: S608
                for t in shape(path)}
    finally:
        conn.close()


def test_a_fresh_file_has_todays_tables_at_the_latest_version(tmp_path: Path) -> None:
    made_by_old_code = tmp_path / "old.db"
    old = sqlite3.connect(made_by_old_code)
    old.executescript(OLD_SCHEMA)
    old.close()
    store = StoreDatabase.open(tmp_path / "store.db")
    store.close()
    assert user_version(tmp_path / "store.db") == LATEST == 6
    assert read_only_check(tmp_path / "store.db") == "ok"
    # migration 1 is the schema the old code made: same tables, columns, keys, indexes;
    # step 2 adds the staff alerts' table, step 3 the tills' receipts and the offer ledger,
    # step 4 the catalog, step 5 the catalog's snapshot (its parts no longer kept aside),
    # step 6 the opted-in apps seen (repeat visits)
    fresh = shape(tmp_path / "store.db")
    added = {"staff_alerts", "pos_receipts", "offer_ledger", "catalog", "catalog_state",
             "visitors"}
    assert set(fresh) - set(shape(made_by_old_code)) == added
    assert {t: v for t, v in fresh.items() if t not in added} == shape(made_by_old_code)
    v1 = tmp_path / "v1.db"
    StoreDatabase.open(v1, migrations=MIGRATIONS[:1]).close()
    assert shape(v1) == shape(made_by_old_code) and user_version(v1) == 1


def test_a_file_of_the_old_code_is_adopted_as_version_1_without_loss(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    old_file(path)
    before = rows(path)
    store = StoreDatabase.open(path)
    assert StoreDb(store).order("A-1") == {
        "order_id": "A-1", "code": "K7Q2M9", "first_name": "Anna", "status": "ready",
        "eta_min": 3, "store": "", "updated": 1.0, "checked_in_at": 2.0,
        "handed_over_at": None}
    store.close()
    assert user_version(path) == LATEST
    assert rows(path) == {**before, "staff_alerts": [], "pos_receipts": [], "offer_ledger": [],
                          "catalog": [], "catalog_state": [], "visitors": []}


def test_a_partial_old_file_gets_the_tables_it_lacked_and_its_document_versions(
        tmp_path: Path) -> None:
    """A file only the store link had written to, before link_versions existed: the
    versions of its documents are where replay protection starts."""
    path = tmp_path / "store.db"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE link_docs (kind TEXT NOT NULL, scope TEXT NOT NULL, "
                       "version INTEGER NOT NULL, raw BLOB NOT NULL, applied_at REAL NOT "
                       "NULL, PRIMARY KEY (kind, scope));"
                       "INSERT INTO link_docs VALUES ('orders', 'all', 9, x'7b7d', 0);")
    conn.close()
    cache = LinkCache(path)
    assert cache.applied() == {("orders", "all"): 9}
    cache.close()
    assert set(shape(path)) == {"appointments", "consent", "kpi_hourly", "link_docs",
                                "link_keys", "link_versions", "loyalty", "orders",
                                "privacy_meta", "staff_alerts", "pos_receipts",
                                "offer_ledger", "catalog", "catalog_state", "visitors"}


def test_a_file_of_a_newer_release_is_refused_in_one_line_and_left_alone(
        tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    StoreDatabase.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreDbTooNew) as refused:
        StoreDb(path)
    message = str(refused.value)
    assert isinstance(refused.value, ConfigError)  # the CLI: one line, exit 2
    assert "\n" not in message and "newer o2o-edge" in message and str(path) in message
    assert "install that version again, or move the file aside" in message
    assert path.read_bytes() == before and user_version(path) == LATEST + 1
    # what `o2o-edge doctor` says of it
    assert read_only_check(path) == (f"written by a newer o2o-edge (schema version "
                                     f"{LATEST + 1}; this one knows up to {LATEST})")
    # and nothing of it is kept open: a fixed file opens in the same process
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST}")
    conn.close()
    StoreDb(path).close()


def test_the_cli_says_so_for_a_newer_file_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    StoreDatabase.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST + 5}")
    conn.close()
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[kiosk]\nstore_db = "{path}"\n')
    done = subprocess.run([*CLI, "report", "--config", str(cfg)], cwd=ROOT, timeout=60,
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "newer o2o-edge" in line and "Traceback" not in done.stderr


def test_a_step_that_fails_leaves_the_file_at_the_version_before(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    StoreDb(path).close()  # at the latest version
    broken = (*MIGRATIONS, Migration(LATEST + 1, "a table, then a statement that fails", (
        "CREATE TABLE extra (a TEXT)", "INSERT INTO no_such_table VALUES (1)")))
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        StoreDatabase.open(path, migrations=broken)
    assert user_version(path) == LATEST
    assert "extra" not in shape(path)  # the whole step rolled back with its version
    good = (*MIGRATIONS, Migration(LATEST + 1, "the step fixed",
                                   ("CREATE TABLE extra (a TEXT)",)))
    store = StoreDatabase.open(path, migrations=good)
    store.close()
    assert user_version(path) == LATEST + 1 and "extra" in shape(path)


def test_each_step_runs_once_when_another_process_got_there_first(tmp_path: Path) -> None:
    """Two processes opening a file at once (the agent and a CLI import): the one that
    waited for the write lock sees the version the other set and does not run the step
    again (a step that is not idempotent would fail: "table extra already exists")."""
    from agent.storedb.migrations import migrate

    path = tmp_path / "store.db"
    StoreDatabase.open(path).close()  # the latest version
    step2 = (*MIGRATIONS, Migration(LATEST + 1, "not idempotent",
                                    ("CREATE TABLE extra (a TEXT)",)))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the other process holds the write lock
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    waiting = threading.Event()
    conn.set_trace_callback(lambda sql: waiting.set() if sql == "BEGIN IMMEDIATE" else None)
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(migrate(conn, path, step2))
        except Exception as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert waiting.wait(10)  # it read the version and now asks for the lock
    other.execute("CREATE TABLE extra (a TEXT)")
    other.execute(f"PRAGMA user_version = {LATEST + 1}")
    other.execute("COMMIT")
    other.close()
    worker.join(10)
    conn.close()
    assert outcome == [LATEST]  # found it, took no step: the other process had
    assert user_version(path) == LATEST + 1


def test_step_2_adds_the_staff_alerts_to_a_version_1_file_keeping_its_rows(
        tmp_path: Path) -> None:
    """A store.db of the release before staff alerts (version 1, with rows) gains the alerts'
    table, its one-live-alert-per-key index, and loses nothing."""
    from agent.services.alerts_store import AlertStore

    path = tmp_path / "store.db"
    old_file(path)
    StoreDatabase.open(path, migrations=MIGRATIONS[:1]).close()
    assert user_version(path) == 1 and "staff_alerts" not in shape(path)
    before = rows(path)
    store = StoreDatabase.open(path, migrations=MIGRATIONS[:2])
    assert user_version(path) == 2
    assert rows(path) == {**before, "staff_alerts": []}
    conn = sqlite3.connect(path)
    indexes = {r[1] for r in conn.execute("PRAGMA index_list(staff_alerts)")}
    conn.close()
    assert {"staff_alerts_by_state", "staff_alerts_one_live"} <= indexes
    repo = AlertStore(store)
    assert repo.listing(10) == ([], 0)
    store.close()


def test_step_3_adds_the_receipts_and_the_offer_ledger_to_a_version_2_file(
        tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    old_file(path)
    StoreDatabase.open(path, migrations=MIGRATIONS[:2]).close()
    before = rows(path)
    StoreDatabase.open(path, migrations=MIGRATIONS[:3]).close()
    assert user_version(path) == 3
    assert rows(path) == {**before, "pos_receipts": [], "offer_ledger": []}


def test_step_4_adds_the_catalog_to_a_version_3_file(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    old_file(path)
    StoreDatabase.open(path, migrations=MIGRATIONS[:3]).close()
    before = rows(path)
    StoreDatabase.open(path, migrations=MIGRATIONS[:4]).close()
    assert user_version(path) == 4
    assert rows(path) == {**before, "catalog": [], "catalog_parts": []}


def test_step_5_keeps_the_catalog_and_drops_the_parts_kept_aside(tmp_path: Path) -> None:
    """Parts kept aside by step 4's way are of a snapshot that can no longer finish (its
    other parts are gone from the retained topic): dropped; the catalog in use stays."""
    path = tmp_path / "store.db"
    StoreDatabase.open(path, migrations=MIGRATIONS[:4]).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO catalog VALUES ('MUG-1', NULL, '{}', 1.0)")
    conn.execute("INSERT INTO catalog_parts VALUES ('s2', 1, 2, '[]', 1.0)")
    conn.commit()
    conn.close()
    StoreDatabase.open(path, migrations=MIGRATIONS[:5]).close()
    assert user_version(path) == 5
    got = rows(path)
    assert got["catalog"] == [("MUG-1", None, "{}", 1.0)] and got["catalog_state"] == []
    assert "catalog_parts" not in got


def test_step_6_adds_the_apps_seen_to_a_version_5_file(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    StoreDatabase.open(path, migrations=MIGRATIONS[:5]).close()
    before = rows(path)
    StoreDatabase.open(path).close()
    assert user_version(path) == 6
    assert rows(path) == {**before, "visitors": []}
