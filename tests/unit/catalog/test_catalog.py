"""The signed catalog: snapshots (whole, or in parts named by hash and fetched as blobs) and
increments (on the snapshot they name, which a device lacking it applies first) applied to
store.db, every bad product refused by its place with nothing applied, a GTIN clash refused,
the status section, and the bus's catalog-lookup op answering by GTIN (any of its spellings)
or SKU with how old the price is."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.catalog import CatalogStore, catalog_applier, lookup_op
from agent.errors import AgentError
from agent.keys import public_key_text
from agent.storedb import StoreDatabase
from agent.storelink.blobs import BlobStore
from agent.storelink.cache import LinkCache
from agent.storelink.docs import sign_jws
from agent.storelink.receiver import DocReceiver

NOW = 1_796_000_000.0
KEY = Ed25519PrivateKey.generate()
TOPIC = "o2o/v1/berlin-01/all/catalog"
MUG = {
    "sku": "MUG-1",
    "gtin": "4006381333931",
    "name": {"en": "Blue mug", "de": "Blaue Tasse"},
    "price": 1299,
    "currency": "EUR",
    "stock": 3,
    "nearby": [{"store": "berlin-02", "name": "Berlin Mitte", "stock": 5}],
    "image": "ab" * 32,
}
CUP = {
    "sku": "CUP-2",
    "gtin": "96385074",
    "name": {"en": "Cup"},
    "price": 450,
    "currency": "EUR",
    "stock": 0,
}


def doc(version: int, body: dict[str, Any], issued: float = NOW - 10) -> bytes:
    return sign_jws(KEY, "catalog", "berlin-01", "all", version, issued, NOW + 3600, body)


@pytest.fixture
def link(tmp_path: Path) -> Any:
    store = StoreDatabase.open(tmp_path / "store.db")
    catalog = CatalogStore(store, clock=lambda: NOW, blobs=BlobStore(tmp_path / "content"))
    events: list[tuple[str, Any]] = []
    rx = DocReceiver(
        "berlin-01",
        "pi-1",
        [public_key_text(KEY.public_key())],
        LinkCache(store),
        {"catalog": catalog_applier(catalog)},
        lambda t, d: events.append((t, d)),
        clock=lambda: NOW,
    )
    yield rx, catalog, events
    store.close()


def test_a_snapshot_then_an_increment_change_a_price_live(link: Any) -> None:
    rx, catalog, _ = link
    assert rx.handle(TOPIC, doc(1, {"mode": "snapshot", "products": [MUG, CUP]})) is not None
    op = lookup_op(catalog, online=lambda: False)
    reply = op({"gtin": "4006381333931"})
    assert reply["found"] and reply["product"]["price"] == 1299 and reply["age_s"] == 10.0
    assert reply["product"]["gtin"] == "04006381333931" and reply["products"] == 2
    assert reply["online"] is False
    cheaper = {**MUG, "price": 999}
    assert (
        rx.handle(
            TOPIC,
            doc(
                2,
                {"mode": "increment", "products": [cheaper], "removed": ["CUP-2"]},
                issued=NOW - 1,
            ),
        )
        is not None
    )
    reply = op({"gtin": "04006381333931"})  # the 14-digit spelling names it too
    assert reply["product"]["price"] == 999 and reply["age_s"] == 1.0
    assert op({"sku": "CUP-2"}) == {"ok": True, "found": False, "online": False, "products": 1}


def part(products: list[Any]) -> tuple[str, bytes]:
    raw = json.dumps(products).encode()
    return hashlib.sha256(raw).hexdigest(), raw


def arrive(rx: DocReceiver, catalog: CatalogStore, *parts: tuple[str, bytes]) -> None:
    """Parts come as retained blobs (the store link puts them and tries the waiting again)."""
    assert catalog.blobs is not None
    for sha, raw in parts:
        catalog.blobs.put(sha, raw)
    rx.retry_deferred()


def test_a_snapshot_in_parts_waits_for_them_then_replaces_the_catalog(link: Any) -> None:
    rx, catalog, _ = link
    rx.handle(TOPIC, doc(1, {"mode": "snapshot", "products": [CUP]}))
    one, two = part([MUG]), part([{**CUP, "sku": "CUP-3"}])
    rx.handle(TOPIC, doc(2, {"mode": "snapshot", "snapshot": "s2",
                             "parts_sha256": [one[0], two[0]]}))
    assert rx.deferred[("catalog", "all")][2] == [one[0], two[0]]  # asked of the broker
    assert catalog.count() == 1 and catalog.lookup(sku="CUP-2") is not None  # not yet
    arrive(rx, catalog, one)
    assert rx.deferred[("catalog", "all")][2] == [two[0]] and catalog.count() == 1
    # a content bundle installed meanwhile prunes the files it does not name: not these
    assert catalog.blobs.keep_only(set()) == 0 and catalog.blobs.size(one[0]) is not None
    arrive(rx, catalog, two)
    assert ("catalog", "all") not in rx.deferred
    assert catalog.count() == 2 and catalog.lookup(sku="CUP-2") is None
    assert catalog.lookup(sku="CUP-3") is not None
    assert catalog.state()[:2] == ("s2", 2)
    # the parts are in the catalog now: their files are not kept twice, nor pinned
    assert catalog.blobs.size(one[0]) is None and catalog.blobs.size(two[0]) is None
    assert catalog.blobs.pinned() == set()
    st = catalog.status()
    assert (st["products"], st["snapshot"], st["version"], st["prices_age_s"]) == (
        2, "s2", 2, {"oldest": 10.0, "newest": 10.0})


def test_parts_that_name_one_gtin_twice_leave_the_catalog_as_it_was(link: Any) -> None:
    rx, catalog, _ = link
    rx.handle(TOPIC, doc(1, {"mode": "snapshot", "products": [CUP]}))
    one, two = part([MUG]), part([{**MUG, "sku": "MUG-2"}])
    rx.handle(TOPIC, doc(2, {"mode": "snapshot", "parts_sha256": [one[0], two[0]]}))
    assert catalog.blobs.pinned() == {one[0], two[0]}  # waiting for them
    arrive(rx, catalog, one, two)
    assert rx.refused["conflict"] == 1 and "another part" in rx.last_refusal
    assert catalog.blobs.pinned() == set()  # refused: nothing waits for its parts
    assert catalog.lookup(sku="CUP-2") is not None and catalog.state()[:2] == ("v1", 1)
    bad = part([CUP, {**MUG, "price": 1.5}])
    arrive(rx, catalog, bad)
    rx.handle(TOPIC, doc(3, {"mode": "snapshot", "parts_sha256": [one[0], bad[0]]}))
    assert "parts[1][1].price" in rx.last_refusal and catalog.count() == 1


def test_an_increment_names_its_snapshot_and_brings_it_to_a_device_without_it(
        link: Any) -> None:
    rx, catalog, _ = link
    one = part([MUG, CUP])
    cheaper = {**MUG, "price": 999}
    increment = {"mode": "increment", "snapshot": "s1", "parts_sha256": [one[0]],
                 "products": [cheaper], "removed": ["CUP-2"]}
    # a device that joins after the snapshot: only the increment is retained on the topic
    rx.handle(TOPIC, doc(5, increment))
    assert catalog.count() == 0  # it waits for the snapshot's part
    arrive(rx, catalog, one)
    assert catalog.count() == 1 and catalog.lookup(sku="MUG-1")[0]["price"] == 999
    assert catalog.state()[:2] == ("s1", 5)
    # the next increment of that snapshot needs no parts here
    rx.handle(TOPIC, doc(6, {"mode": "increment", "snapshot": "s1",
                             "products": [{**MUG, "price": 899}]}))
    assert catalog.lookup(sku="MUG-1")[0]["price"] == 899
    # an increment of a snapshot this device lacks, without its parts: said, not guessed
    rx.handle(TOPIC, doc(7, {"mode": "increment", "snapshot": "s9", "products": [CUP]}))
    assert rx.refused["stale-base"] == 1 and "this device has snapshot s1" in rx.last_refusal
    assert catalog.lookup(sku="CUP-2") is None


def test_an_increment_without_a_snapshot_needs_a_catalog_to_change(link: Any) -> None:
    rx, catalog, _ = link
    rx.handle(TOPIC, doc(1, {"mode": "increment", "products": [MUG]}))
    assert rx.refused["stale-base"] == 1 and catalog.count() == 0
    assert catalog.status()["prices_age_s"] == {}


@pytest.mark.parametrize(
    ("product", "where"),
    [
        ({**MUG, "gtin": "4006381333932"}, "products[0].gtin"),
        ({**MUG, "gtin": 4006381333931}, "products[0].gtin"),
        ({**MUG, "price": 12.99}, "products[0].price"),
        ({**MUG, "price": -1}, "products[0].price"),
        ({**MUG, "price": True}, "products[0].price"),
        ({**MUG, "currency": "eur"}, "products[0].currency"),
        ({**MUG, "name": {}}, "products[0].name"),
        ({**MUG, "name": {"english": "Mug"}}, "products[0].name"),
        ({**MUG, "name": {"en": "x" * 201}}, "products[0].name"),
        ({**MUG, "name": {"en": "Mug\x1b[2J"}}, "products[0].name"),
        ({**MUG, "sku": "../../etc"}, "products[0].sku"),
        ({**MUG, "stock": 10**7}, "products[0].stock"),
        ({**MUG, "nearby": [{"store": "x"}]}, "products[0].nearby"),
        ({**MUG, "image": "AB" * 32}, "products[0].image"),
        ({**MUG, "colour": "blue"}, "products[0]: unknown field"),
        ("MUG-1", "products[0]: must be an object"),
    ],
)
def test_a_bad_product_refuses_the_document_by_its_place(
    link: Any, product: Any, where: str
) -> None:
    rx, catalog, _ = link
    rx.handle(TOPIC, doc(1, {"mode": "snapshot", "products": [product, CUP]}))
    assert rx.refused["malformed"] == 1 and where in rx.last_refusal
    assert catalog.count() == 0


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"mode": "replace", "products": []}, "needs"),
        ({"mode": "snapshot"}, "a list of at most"),
        ({"mode": "snapshot", "products": [MUG] * 5001}, "a list of at most"),
        ({"mode": "snapshot", "products": [MUG, {**MUG, "gtin": None}]}, "is products[0]'s"),
        ({"mode": "snapshot", "products": [], "part": 1, "parts": 2}, "overwrite each other"),
        ({"mode": "snapshot", "parts_sha256": ["ab" * 32] * 2}, "different SHA-256s"),
        ({"mode": "snapshot", "parts_sha256": ["AB" * 32]}, "different SHA-256s"),
        ({"mode": "snapshot", "parts_sha256": [f"{i:064x}" for i in range(101)]},
         "1 to 100"),
        ({"mode": "snapshot", "parts_sha256": ["ab" * 32], "products": []}, "not both"),
        ({"mode": "snapshot", "products": [], "removed": ["A"]}, "removes nothing"),
        ({"mode": "increment", "products": [], "parts_sha256": ["ab" * 32]}, "name the snapshot"),
        ({"mode": "increment", "products": [], "colour": 1}, "unknown field"),
        ({"mode": "increment", "products": [], "removed": ["a b"]}, "removed"),
    ],
)
def test_a_bad_body_is_refused_with_what_to_fix(link: Any, body: dict[str, Any], says: str) -> None:
    rx, _, _ = link
    rx.handle(TOPIC, doc(1, body))
    assert rx.refused["malformed"] == 1 and says in rx.last_refusal, rx.last_refusal


def test_an_increment_giving_a_gtin_to_a_second_sku_is_a_conflict(link: Any) -> None:
    rx, catalog, _ = link
    rx.handle(TOPIC, doc(1, {"mode": "snapshot", "products": [MUG, CUP]}))
    rx.handle(
        TOPIC, doc(2, {"mode": "increment", "products": [{**CUP, "gtin": MUG["gtin"], "price": 1}]})
    )
    assert rx.refused["conflict"] == 1
    assert catalog.lookup(sku="CUP-2")[0]["price"] == 450  # nothing of it applied


def test_lookup_op_refuses_what_is_no_gtin_or_sku_in_one_line(link: Any) -> None:
    _, catalog, _ = link
    op = lookup_op(catalog, online=lambda: True)
    for bad in (
        {},
        {"gtin": "4006381333932"},
        {"gtin": "12"},
        {"gtin": 4006381333931},
        {"sku": "a b"},
        {"sku": "x" * 65},
        {"gtin": "4006381333931", "sku": "A"},
        {"gtin": "9" * 10_000},
    ):
        with pytest.raises(AgentError) as err:
            op(bad)
        assert "\n" not in str(err.value) and len(str(err.value)) < 200
    assert op({"gtin": "4006381333931"})["found"] is False


def test_the_catalog_tables_are_steps_four_and_five_of_the_store_database(
        tmp_path: Path) -> None:
    StoreDatabase.open(tmp_path / "store.db").close()
    conn = sqlite3.connect(tmp_path / "store.db")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"catalog", "catalog_state"} <= tables and "catalog_parts" not in tables
    assert conn.execute("PRAGMA user_version").fetchone()[0] >= 5
    conn.close()
