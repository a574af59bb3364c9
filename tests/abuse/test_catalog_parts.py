"""Catalog snapshots in parts named by SHA-256, attacked through the store link as the uplink
hands it messages: a part whose bytes do not match, a part that never comes, 1,000 parts
named, one part named twice, a part over the bound or not a list of products, an increment
naming a snapshot the device does not have. What a store relies on: the catalog in use keeps
answering until a whole snapshot is here and checked; every refusal is counted and said once
per reason; nothing waits forever for what was replaced; the device asks the broker only for
the parts a waiting snapshot still needs."""

from __future__ import annotations

import asyncio
import hashlib
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from agent.catalog import CatalogStore, catalog_applier
from agent.contracts.catalog import MAX_PART_BYTES
from agent.contracts.events import LINK_REFUSED
from agent.keys import public_key_text
from agent.storedb import StoreDatabase
from agent.storelink.blobs import MAX_BLOB_BYTES
from agent.storelink.cache import LinkCache
from agent.storelink.docs import sign_jws
from agent.storelink.service import StoreLink
from tests.abuse.conftest import ABUSE

NOW = 1_796_000_000.0
KEY = Ed25519PrivateKey.generate()
BASE = "o2o/v1/berlin-01/all"


def product(sku: str, price: int = 100) -> dict[str, Any]:
    return {"sku": sku, "name": {"en": sku}, "price": price, "currency": "EUR"}


def part(products: Any) -> tuple[str, bytes]:
    raw = products if isinstance(products, bytes) else json.dumps(products).encode()
    return hashlib.sha256(raw).hexdigest(), raw


def doc(version: int, body: dict[str, Any]) -> bytes:
    return sign_jws(KEY, "catalog", "berlin-01", "all", version, NOW - 10, NOW + 3600, body)


class Link:
    """The store link with the agent's catalog applier; messages handed over as the uplink
    does, one at a time."""

    def __init__(self, tmp_path: Path) -> None:
        self.db = StoreDatabase.open(tmp_path / "store.db")
        self.events: list[tuple[str, Any]] = []
        self.wanted: set[str] = set()
        self.link = StoreLink(
            "berlin-01", "pi-1", [public_key_text(KEY.public_key())], LinkCache(self.db),
            {}, tmp_path / "content", lambda t, d: self.events.append((t, d)),
            reply=lambda *a: None, handlers={}, want_topics=self._want,
            schedule=lambda delay, fn: fn() if delay == 0 else None)
        self.link.receiver.clock = lambda: NOW
        self.catalog = CatalogStore(self.db, clock=lambda: NOW, blobs=self.link.blobs)
        self.link.receiver.appliers["catalog"] = catalog_applier(self.catalog)

    def _want(self, topics: set[str]) -> None:
        self.wanted = {t.rsplit("/", 1)[1] for t in topics}

    def send(self, topic: str, raw: bytes) -> None:
        asyncio.run(self.link.handle(topic, raw, "", b""))

    def catalog_doc(self, version: int, body: dict[str, Any]) -> None:
        self.send(f"{BASE}/catalog", doc(version, body))

    def blob(self, sha: str, raw: bytes) -> None:
        self.send(f"{BASE}/blob/{sha}", raw)

    @property
    def rx(self) -> Any:
        return self.link.receiver

    def said(self) -> list[str]:
        return [d["reason"] for t, d in self.events if t == LINK_REFUSED]

    def price(self, sku: str) -> int | None:
        found = self.catalog.lookup(sku=sku)
        return found[0]["price"] if found else None


@pytest.fixture
def link(tmp_path: Path) -> Iterator[Link]:
    lk = Link(tmp_path)
    lk.catalog_doc(1, {"mode": "snapshot", "snapshot": "day-1", "products": [product("MUG")]})
    assert lk.price("MUG") == 100
    yield lk
    lk.db.close()


def test_a_part_whose_bytes_do_not_match_is_refused_and_the_right_one_still_taken(
        link: Link) -> None:
    one, two = part([product("MUG", 90)]), part([product("CUP")])
    link.catalog_doc(2, {"mode": "snapshot", "snapshot": "day-2",
                         "parts_sha256": [one[0], two[0]]})
    assert link.wanted == {one[0], two[0]}  # the broker is asked for these two only
    for _ in range(20):  # a flood of wrong bytes under the part's name
        link.blob(one[0], b'[{"sku": "MUG", "price": 1}]')
    link.blob("0" * 64, part([product("EVIL")])[1])  # a part nobody asked for: not taken
    assert link.catalog.blobs is not None and link.catalog.blobs.size("0" * 64) is None
    assert link.price("MUG") == 100 and link.wanted == {one[0], two[0]}
    assert link.rx.refused == {"bad-file-hash": 20} and link.said() == ["bad-file-hash"]
    link.blob(*one)
    assert link.wanted == {two[0]}
    link.blob(*two)
    assert link.price("MUG") == 90 and link.price("CUP") == 100 and not link.wanted
    assert link.catalog.state()[:2] == ("day-2", 2)  # type: ignore[index]
    assert not link.rx.failed


def test_a_part_that_never_comes_leaves_the_catalog_in_use_and_a_later_document_wins(
        link: Link) -> None:
    here, never = part([product("MUG", 90)]), part([product("GHOST")])
    link.catalog_doc(2, {"mode": "snapshot", "snapshot": "day-2",
                         "parts_sha256": [here[0], never[0]]})
    link.blob(*here)
    assert link.price("MUG") == 100  # still the catalog in use, answering
    assert link.rx.status()["waiting"] == {"catalog/all": 1}
    assert link.catalog.blobs is not None and link.catalog.blobs.pinned() == {here[0], never[0]}
    # upstream gives up on day-2: the next snapshot replaces what waited, and its pins
    link.catalog_doc(3, {"mode": "snapshot", "snapshot": "day-3",
                         "products": [product("MUG", 80)]})
    assert link.price("MUG") == 80 and link.rx.status()["waiting"] == {}
    assert link.wanted == set() and link.catalog.blobs.pinned() == set()
    link.blob(*never)  # comes after all: nobody waits for it, it is not kept
    assert link.catalog.blobs.size(never[0]) is None and link.price("GHOST") is None
    assert not link.rx.refused and not link.rx.failed


@pytest.mark.parametrize("body, says", [
    ({"mode": "snapshot", "snapshot": "big",
      "parts_sha256": [f"{i:064x}" for i in range(1000)]}, "1 to 100 different SHA-256s"),
    ({"mode": "snapshot", "snapshot": "twice", "parts_sha256": ["ab" * 32, "ab" * 32]},
     "1 to 100 different SHA-256s"),
    ({"mode": "snapshot", "snapshot": "x", "parts_sha256": ["AB" * 32]}, "lowercase hex"),
    ({"mode": "snapshot", "snapshot": "x", "parts_sha256": "ab" * 32}, "one per part"),
    ({"mode": "increment", "snapshot": "day-9", "products": [product("MUG", 1)]},
     "does not name that snapshot's parts"),
])
def test_a_document_naming_parts_wrongly_is_refused_at_once(link: Link, body: dict[str, Any],
                                                           says: str) -> None:
    link.catalog_doc(2, body)
    assert sum(link.rx.refused.values()) == 1 and says in link.rx.last_refusal
    assert not link.wanted and link.rx.status()["waiting"] == {}
    assert link.price("MUG") == 100 and not link.rx.failed


def test_an_increment_on_a_snapshot_this_device_lacks_brings_it_or_waits(link: Link) -> None:
    base = part([product("MUG", 70), product("CUP")])
    link.catalog_doc(2, {"mode": "increment", "snapshot": "day-9",
                         "parts_sha256": [base[0]], "products": [product("CUP", 60)]})
    assert link.wanted == {base[0]} and link.price("MUG") == 100  # day-1 still in use
    link.blob(*base)
    assert (link.price("MUG"), link.price("CUP")) == (70, 60)
    assert link.catalog.state()[:2] == ("day-9", 2)  # type: ignore[index]


@pytest.mark.parametrize("raw, code", [
    (b"x" * (MAX_BLOB_BYTES + 1), "oversized"),
    (b"[" + b" " * MAX_PART_BYTES + b"]", "oversized"),
    (b"not json", "malformed"),
    (b"[" * 100_000 + b"]" * 100_000, "malformed"),
    (json.dumps([product(f"P{i}") for i in range(5001)]).encode(), "malformed"),
    (json.dumps([product("MUG"), product("MUG")]).encode(), "malformed"),
    (json.dumps({"products": [product("MUG")]}).encode(), "malformed"),
    (json.dumps([{**product("MUG"), "name": {"en": "\u202e\x1b[2J"}}]).encode(),
     "malformed"),
], ids=["over-32MiB", "over-8MiB", "not-json", "deep", "5001-products", "sku-twice", "not-a-list",
        "controls"])
def test_a_bad_part_refuses_the_snapshot_and_leaves_the_catalog(link: Link, raw: bytes,
                                                                code: str) -> None:
    good = part([product("CUP")])
    sha = hashlib.sha256(raw).hexdigest()
    link.catalog_doc(2, {"mode": "snapshot", "snapshot": "day-2",
                         "parts_sha256": [good[0], sha]})
    link.blob(*good)
    link.blob(sha, raw)
    assert link.rx.refused == {code: 1}, link.rx.last_failure
    assert link.said() == [code] and not link.rx.failed
    assert link.price("MUG") == 100 and link.price("CUP") is None
    assert link.catalog.state()[:2] == ("day-1", 1)  # type: ignore[index]
    if len(raw) > MAX_BLOB_BYTES:  # refused as it came: the snapshot still waits for the part
        assert link.wanted == {sha}
    else:  # the snapshot is refused whole: nothing waits, nothing stays pinned
        assert not link.wanted and link.rx.status()["waiting"] == {}
        assert link.catalog.blobs is not None and link.catalog.blobs.pinned() == set()


@pytest.mark.parametrize("size", [4 << 20, pytest.param(MAX_PART_BYTES - 64,
                                                         marks=pytest.mark.slow),
                                  MAX_PART_BYTES + 1, MAX_BLOB_BYTES - 64])
def test_a_large_part_costs_bounded_memory(link: Link, size: int) -> None:
    """A part made of what costs most to parse (tiny numbers in a list) is refused; the
    memory it took is a bounded multiple of the part bound (8 MiB), whatever its size
    (a 32 MiB one took 323 MiB before the bound)."""
    raw = b'[{"sku": "A", "x": [' + b"0.5," * (size // 4) + b'0]}]'
    sha = hashlib.sha256(raw).hexdigest()
    link.catalog_doc(2, {"mode": "snapshot", "snapshot": "day-2", "parts_sha256": [sha]})
    tracemalloc.start()
    try:
        link.blob(sha, raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert link.rx.refused == {"malformed" if size <= MAX_PART_BYTES else "oversized": 1}
    bound = 12 * len(raw) if size <= MAX_PART_BYTES else 4 << 20
    assert peak < bound, f"{peak / 2**20:.0f} MiB for a {len(raw) / 2**20:.0f} MiB part"


@pytest.mark.parametrize("name, taken", [
    ("Tasse 0,5\u00a0l", True),  # a no-break space, as shop systems export them
    ("10\u202f% Rabatt", True),  # a narrow no-break space before the percent sign
    ("\U0001f469\u200d\U0001f373 Kochbuch", True),  # an emoji sequence's joiner
    ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", True),  # Persian's non-joiner
    ("Kaffee\u00adbohnen", True),  # a soft hyphen, where a long German word may break
    ("Tasse\u202e", False),  # a bidi override: would reorder what shoppers read
    ("Tas\u200bse", False),  # a zero-width space: an invisible difference
    ("Tasse\x1b[2J", False),
    ("Tasse\u2028l", False),  # a line separator
    (" Tasse", False),
])
def test_a_product_name_with_careless_or_hostile_characters(link: Link, name: str,
                                                            taken: bool) -> None:
    """One product name refuses the whole catalog: what shop systems write in names must
    pass, what reorders or hides text must not."""
    link.catalog_doc(2, {"mode": "snapshot", "snapshot": "day-2",
                         "products": [{**product("MUG", 90), "name": {"de": name}}]})
    assert (link.price("MUG") == 90) is taken, link.rx.last_refusal
    assert link.rx.refused == ({} if taken else {"malformed": 1})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=12)
PRODUCT_FIELD = st.sampled_from(["sku", "gtin", "name", "price", "currency", "stock",
                                 "nearby", "image", "extra"])


@ABUSE
@given(fields=st.dictionaries(PRODUCT_FIELD, JSON, max_size=4))
def test_any_product_in_a_part_is_applied_or_refused_never_failed(
        tmp_path_factory: Any, fields: dict[str, Any]) -> None:
    lk = Link(tmp_path_factory.mktemp("catalog"))
    try:
        lk.catalog_doc(1, {"mode": "snapshot", "snapshot": "day-1",
                           "products": [product("MUG")]})
        sha, raw = part([product("CUP"), {**product("HOSTILE"), **fields}])
        lk.catalog_doc(2, {"mode": "snapshot", "snapshot": "day-2", "parts_sha256": [sha]})
        lk.blob(sha, raw)
        assert not lk.rx.failed, lk.rx.last_failure
        if lk.rx.refused:
            assert lk.rx.refused == {"malformed": 1} and lk.price("MUG") == 100
        else:
            assert lk.price("CUP") == 100 and lk.price("MUG") is None
        assert not lk.wanted and lk.rx.status()["waiting"] == {}
    finally:
        lk.db.close()
