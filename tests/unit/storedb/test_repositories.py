"""Each repository of store.db touches only its own tables — watched by SQLite itself (an
authorizer sees every table a statement reads or writes) — and the retention sweep and a
subject's erasure reach every table group through the groups themselves."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.checkin import StoreDb
from agent.consent import Consent
from agent.kpi import Kpis
from agent.privacy import Privacy
from agent.storedb import StoreDatabase
from agent.storelink.cache import LinkCache
from agent.storelink.docs import Doc

CHECKIN = {"orders", "appointments", "loyalty"}
LINK = {"link_docs", "link_versions", "link_keys"}
CONSENT = {"consent", "privacy_meta"}
KPI = {"kpi_hourly"}
ANNA = {"order_id": "A-1", "code": "K7Q2M9", "first_name": "Anna", "status": "ready",
        "eta_min": 3, "store": ""}
APP = "app:2f23:77:3"
NOW = time.time()
DAY = 86400


def consent_doc(rows: list[dict[str, str]]) -> Doc:
    return Doc("consent", "s", "all", 1, 0.0, 1e12, {"mode": "increment", "rows": rows}, "k")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreDatabase]:
    owner = StoreDatabase.open(tmp_path / "store.db")
    yield owner
    owner.close()


@contextmanager
def tables_touched(store: StoreDatabase) -> Iterator[set[str]]:
    """The tables every statement on the owner's connection reads or writes meanwhile."""
    seen: set[str] = set()
    table_actions = {sqlite3.SQLITE_READ, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_INSERT,
                     sqlite3.SQLITE_DELETE}

    def watch(action: int, arg1: str | None, arg2: str | None, db: str | None,
              trigger: str | None) -> int:
        if action in table_actions and arg1 and not arg1.startswith("sqlite_"):
            seen.add(arg1)
        return sqlite3.SQLITE_OK

    conn = store._conn  # the one connection: what any repository does goes through it
    conn.set_authorizer(watch)
    try:
        yield seen
    finally:
        conn.set_authorizer(None)


def every_use(store: StoreDatabase) -> dict[str, tuple[set[str], Callable[[], object]]]:
    orders, cache, kpis = StoreDb(store), LinkCache(store), Kpis(store)
    consent = Consent(store)

    def checkin() -> None:
        orders.replace("orders", [ANNA])
        orders.snapshot("appointments", [])
        orders.replace("loyalty", [{"card": "loy1", "first_name": "Ben", "points": 3}])
        orders.order("A-1"), orders.order_by_code("K7Q2M9"), orders.loyalty("loy1")
        orders.appointment_by_code("XXXX")
        orders.mark("orders", "A-1", "handed_over_at")
        orders.queue()
        orders.retention_sweep(NOW - DAY)
        orders.erase_rows_of("A-1")

    def link() -> None:
        cache.store("orders", "all", 3, b'{"rows":[{"first_name":"Anna"}]}')
        cache.store("cmd", "device", 4, b"{}")
        cache.replace_keys({"k1": "ab"})
        cache.applied(), cache.document("orders", "all"), cache.keys()
        cache.retention_sweep(NOW - DAY)
        cache.erase_rows_of("Anna")

    def rollups() -> None:
        kpis.add_bodies([("o2o.nfc.tap", NOW, '{"data":{}}')])
        kpis.flush()
        kpis.day(int(NOW // DAY * DAY))
        kpis.retention_sweep(NOW - DAY)
        kpis.erase_rows_of(APP)

    def consents() -> None:
        Consent(store)
        consent.apply_consent(consent_doc([{"subject": APP, "state": "granted"}]))
        consent.retention_sweep(NOW - DAY)
        consent.erase_rows_of(APP)

    return {"check-in": (CHECKIN, checkin), "link cache": (LINK, link),
            "KPIs": (KPI, rollups), "consent": (CONSENT, consents)}


def test_each_repository_touches_only_its_own_tables(store: StoreDatabase) -> None:
    for name, (own, use) in every_use(store).items():
        with tables_touched(store) as seen:
            use()
        assert seen and seen <= own, f"{name} touched {sorted(seen - own)}"


def test_the_sweep_and_the_erasure_touch_each_group_through_its_repository(
        store: StoreDatabase) -> None:
    """Everything the privacy controls delete, they delete through the groups: with no
    groups but consent, they touch consent only (the old sweep deleted from every table
    itself, the old check-in erasure rewrote the link cache's documents)."""
    privacy = Privacy(store, groups=())
    with tables_touched(store) as seen:
        privacy.sweep(90, now=NOW)
        privacy.erase_subject(APP)
    assert seen <= CONSENT


def filled(store: StoreDatabase) -> tuple[StoreDb, LinkCache, Kpis, Privacy]:
    orders, cache, kpis = StoreDb(store), LinkCache(store), Kpis(store)
    privacy = Privacy(store, groups=(orders, cache, kpis))
    orders.replace("orders", [ANNA])
    orders.replace("loyalty", [{"card": "loy1", "first_name": "Ben", "points": 3}])
    orders.replace("appointments", [
        {"appt_id": "P-old", "code": None, "first_name": "", "at": NOW - 100 * DAY,
         "service": ""},
        {"appt_id": "P-new", "code": "APPT1", "first_name": "Cleo", "at": NOW + 3600,
         "service": ""}])
    kpis.add_bodies([("o2o.nfc.tap", NOW - 100 * DAY, '{"data":{}}'),
                     ("o2o.nfc.tap", NOW, '{"data":{}}')])
    kpis.flush()
    cache.store("orders", "all", 1, '{"rows":[{"first_name":"Zoë","order_id":"A-1"}]}'
                .encode())
    cache.store("config", "all", 1, b'{"sections":{}}')
    privacy.apply_consent(consent_doc([{"subject": APP, "state": "withdrawn"},
                                       {"subject": "app:g:1:1", "state": "granted"}]))
    return orders, cache, kpis, privacy


def test_the_retention_sweep_asks_every_group(store: StoreDatabase) -> None:
    orders, cache, _, privacy = filled(store)
    assert privacy.sweep(90, now=NOW) == {"orders": 0, "appointments": 1, "loyalty": 0,
                                          "kpi_hourly": 1, "consent": 0, "link_docs": 0}
    later = privacy.sweep(90, now=NOW + 91 * DAY)
    assert later == {"orders": 1, "appointments": 1, "loyalty": 1, "kpi_hourly": 1,
                     "consent": 1, "link_docs": 1}
    # what stays whatever its age: a withdrawal, the device's config, document versions
    assert privacy.key_of(APP) in privacy.withdrawn
    assert cache.document("config", "all") is not None
    assert cache.applied() == {("orders", "all"): 1, ("config", "all"): 1}
    assert orders.order("A-1") is None


def test_erasing_a_subject_asks_every_group_and_leaves_no_trace(
        store: StoreDatabase, tmp_path: Path) -> None:
    orders, cache, _, privacy = filled(store)
    assert privacy.erase_subject("A-1") == {"loyalty": 0, "orders": 1, "appointments": 0,
                                            "cached_documents": 1, "consent_records": 0}
    assert orders.order("A-1") is None and cache.document("orders", "all") == b""
    # a name written in the other Unicode normal form is found too
    cache.store("orders", "all", 2, '{"rows":[{"first_name":"Zoe\u0308"}]}'.encode())
    assert privacy.erase_subject("Zoë")["cached_documents"] == 1
    assert privacy.erase_subject(APP)["consent_records"] == 1
    assert privacy.key_of(APP) in privacy.withdrawn  # never reported again
    raw = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.name.startswith("store"))
    assert b"Anna" not in raw and "Zoë".encode() not in raw and b"K7Q2M9" not in raw
    assert APP.encode() not in raw


def test_privacy_built_from_a_path_sweeps_every_group_as_before(tmp_path: Path) -> None:
    """What callers of Privacy(path) had: the sweep of every table."""
    store = StoreDatabase.open(tmp_path / "store.db")
    filled(store)
    privacy = Privacy(tmp_path / "store.db")
    assert set(privacy.sweep(90, now=NOW + 91 * DAY)) == {
        "orders", "appointments", "loyalty", "kpi_hourly", "consent", "link_docs", "visitors"}
    privacy.close()
    store.close()
