"""The catalog's contract: what a signed `catalog` document holds (agent/catalog/), and what
the bus's `catalog-lookup` op answers the kiosk.

A product: its SKU, its GTIN (the 14-digit form drivers/qr/gtin.py reads from a barcode; none
for a product without one), its name per language, its price in integer minor units with its
currency (ISO 4217), its stock in this store and in nearby stores, and the SHA-256 of its
picture (a file of the content bundle). The body of a catalog document:

    {"mode": "snapshot", "snapshot": "2026-12-02", "products": [...]}
    {"mode": "snapshot", "snapshot": "2026-12-02", "parts_sha256": ["<sha256>", ...]}
    {"mode": "increment", "snapshot": "2026-12-02", "parts_sha256": [...],
     "products": [...], "removed": ["SKU-1", ...]}

A snapshot replaces the catalog: its products inline (at most MAX_PRODUCTS), or a large one in
up to MAX_PARTS parts, each a JSON list of at most MAX_PRODUCTS products (and MAX_PART_BYTES)
published retained on o2o/v1/{store}/all/blob/<its SHA-256> and named here by hash (the
document waits until
they are all here). An increment's products replace the products of their SKUs and `removed`
drops SKUs; it names the snapshot it changes, and that snapshot's parts so that a device
without it applies it first (the catalog topic retains only the last document: each one must
be enough on its own, so an increment carries every change since its snapshot).
"""

from __future__ import annotations

import re
from typing import Final, NotRequired, TypedDict

from agent.contracts.bus import Reply

OP_LOOKUP: Final = "catalog-lookup"  # agent/contracts/bus.py Op.CATALOG_LOOKUP
MAX_PRODUCTS: Final = 5_000  # per document: a part of a snapshot, or an increment
MAX_PARTS: Final = 100  # per snapshot: 500,000 products
# bytes of a part: parsing JSON takes up to ten times its size in memory (a list of small
# numbers) and the content files' bound (32 MiB) would be 320 MiB on a Pi; 5,000 products
# take about 2 MiB, as a document holding them does
MAX_PART_BYTES: Final = 8 * 1024 * 1024
MAX_REMOVED: Final = 5_000
MAX_LANGUAGES: Final = 12
MAX_NAME: Final = 200  # characters of a product's name in one language
MAX_NEARBY: Final = 10
MAX_PRICE: Final = 10**9  # minor units: ten million euros
MAX_STOCK: Final = 10**6
SKU: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")
LANGUAGE: Final = re.compile(r"[a-z]{2}")
CURRENCY: Final = re.compile(r"[A-Z]{3}")
STORE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,31}")
SNAPSHOT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
SHA256: Final = re.compile(r"[0-9a-f]{64}")


class Nearby(TypedDict):
    store: str  # the store's id
    name: str  # its name as shoppers know it ("Berlin Mitte")
    stock: int


class Product(TypedDict):
    sku: str
    gtin: str | None
    name: dict[str, str]  # language -> name
    price: int  # minor units (cents)
    currency: str
    stock: int  # here
    nearby: list[Nearby]
    image: str | None  # SHA-256 of the picture (a file of the content bundle)


class CatalogReply(Reply):
    """op catalog-lookup, {"gtin": digits} or {"sku": text}: the product, or found false;
    `priced_at` when its price was issued upstream and `age_s` how long ago that is (the
    kiosk says it when the agent is offline: `online`)."""

    found: bool
    product: NotRequired[Product]
    priced_at: NotRequired[float]
    age_s: NotRequired[float]
    online: bool
    products: int  # in the catalog
