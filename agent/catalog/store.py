"""The catalog in store.db: signed catalog documents applied (agent/catalog/rows.py checks
them), products looked up by GTIN or SKU for the kiosk's product card.

Every catalog document arrives on the one retained topic o2o/v1/{store}/all/catalog, where
the broker keeps only the last: a device that connects later gets that one document and
nothing before it. So each document must be enough on its own:

- a snapshot is whole: its products inline (up to MAX_PRODUCTS), or its parts named by
  SHA-256 (`parts_sha256`), each part a JSON list of products retained on the blob topic
  o2o/v1/{store}/all/blob/<sha256>, fetched as content files are (the document waits until
  they are all here; the signed hashes make the unsigned parts trustworthy);
- an increment names the snapshot it changes (`snapshot`) and, to be applied on a device
  that does not have that snapshot, its parts (`parts_sha256`): the device applies the
  snapshot first. An increment carries every change since its snapshot (upstream's rule),
  since the ones before it are gone from the topic.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

from agent.catalog.rows import Body, products
from agent.contracts import catalog as c
from agent.contracts.status import CatalogStatus
from agent.errors import AgentError, Reason
from agent.localdb import retry_when_full
from agent.storedb import Repository, StoreDatabase
from agent.storelink.blobs import BlobStore
from agent.storelink.docs import Doc, DocDeferred, DocRefused
from drivers.qr.gtin import GtinError, gtin14

log = logging.getLogger(__name__)
# a snapshot's parts on their way in (a table of the connection's own temporary database)
STAGE = "temp.catalog_next"
PIN = "catalog"  # the blob store's pin of a waiting snapshot's parts


class Summary(TypedDict):
    """What the status says of the catalog, kept in memory and renewed at each change."""

    products: int
    snapshot: str | None
    version: int | None
    applied_at: float | None
    priced_oldest: float | None
    priced_newest: float | None


class CatalogStore(Repository):
    def __init__(self, store: Path | StoreDatabase, clock: Callable[[], float] = time.time,
                 blobs: BlobStore | None = None) -> None:
        """`blobs`: where a snapshot's parts arrive (the store link's content files)."""
        super().__init__(store)
        self.clock = clock
        self.blobs = blobs
        self._lock = threading.Lock()
        self._summary: Summary = self._summarise()

    # --- applying documents (a worker thread of the store link) ---------------------------

    @retry_when_full
    def apply(self, doc: Doc) -> str:
        """Apply a verified catalog document; what it did, in words (logged). DocRefused
        when its body is wrong or it clashes with the catalog (nothing of it applied),
        DocDeferred while parts it names are still to come."""
        body = Body(doc)
        state = self.state()
        # the parts to apply first: a snapshot's, or an increment's base the device lacks
        base = body.mode == "snapshot" or (
            body.snapshot is not None and (state is None or state[0] != body.snapshot))
        if body.mode == "increment" and base and not body.parts:
            have = f"snapshot {state[0]}" if state else "no catalog"
            raise DocRefused("stale-base", f"the increment changes snapshot {body.snapshot}, "
                             f"this device has {have}, and the increment does not name that "
                             "snapshot's parts (parts_sha256): publish them with it")
        if body.mode == "increment" and body.snapshot is None and state is None:
            raise DocRefused("stale-base", "an increment with no snapshot to change: name its "
                             "snapshot and that snapshot's parts (snapshot, parts_sha256)")
        in_parts = base and bool(body.parts)
        try:
            # the parts checked and put aside a part at a time (never all in memory), before
            # the store database's write lock, which every till and kiosk request waits for
            n = self._stage(body, doc.issued) if in_parts else len(body.products)
            with self._store.writing() as db:
                if base:
                    db.execute("DELETE FROM catalog")
                    if in_parts:
                        db.execute(f"INSERT INTO catalog SELECT * FROM {STAGE}")  # noqa: S608
                    else:  # plain INSERTs: a SKU or GTIN twice is a clash, not an overwrite
                        self._insert(db, body.products, doc.issued)
                if body.mode == "increment":
                    # a GTIN moving to another SKU: the old holder loses it first in the
                    # same document (removed), else the UNIQUE column refuses the document
                    db.executemany("DELETE FROM catalog WHERE sku = ?",
                                   [(s,) for s in body.removed])
                    self._put(db, body.products, doc.issued)
                snapshot = body.snapshot if base else (state[0] if state else "")
                db.execute("INSERT OR REPLACE INTO catalog_state VALUES (1, ?, ?, ?, ?)",
                           (snapshot, doc.version, doc.issued, self.clock()))
        except DocDeferred:
            raise  # still waiting: the parts stay pinned
        except sqlite3.IntegrityError:
            self._unpin()
            raise DocRefused(
                "conflict",
                "a SKU or GTIN of the document is another product's (in the catalog or in "
                "another part); nothing of the document applied",
            ) from None
        except BaseException:
            self._unpin()  # refused or failed: nothing waits for the parts any more
            raise
        finally:
            if in_parts:
                with self._store.reading() as db:
                    db.execute(f"DROP TABLE IF EXISTS {STAGE}")
        self._forget_parts(body.parts if in_parts else [])
        self._refresh()
        if body.mode == "snapshot":
            return f"snapshot {body.snapshot}: {n} products" + (
                f" in {len(body.parts)} parts" if in_parts else "")
        done = f"{len(body.products)} products changed, {len(body.removed)} removed"
        return f"snapshot {body.snapshot} ({n} products) then {done}" if base else done

    def _stage(self, body: Body, issued: float) -> int:
        """Each part checked (by its place: parts[2][7].price) and put in a temporary table
        of the database's connection, which takes no lock of the file: a SKU or GTIN in two
        parts is refused here. DocDeferred naming the parts still to come. How many
        products."""
        if self.blobs is None:
            raise DocRefused("unsupported", "this agent takes no snapshot in parts: no store "
                             "link content directory")
        missing = [sha for sha in body.parts if self.blobs.size(sha) is None]
        if missing:  # the parts here stay until the others come (a content install prunes)
            self.blobs.pin(PIN, body.parts)
            raise DocDeferred(missing, f"snapshot {body.snapshot} waits for {len(missing)} "
                              f"of its {len(body.parts)} parts")
        with self._store.reading() as db:
            db.execute(f"DROP TABLE IF EXISTS {STAGE}")
            db.execute(f"CREATE TABLE {STAGE} (sku TEXT PRIMARY KEY, gtin TEXT UNIQUE, "
                       "product TEXT NOT NULL, priced_at REAL NOT NULL)")
        n = 0
        for i in range(len(body.parts)):
            rows = [self._row(p, issued) for p in self._part(body, i)]  # the costly check
            with self._store.reading() as db:
                db.execute("BEGIN")
                try:
                    db.executemany(f"INSERT INTO {STAGE} VALUES (?, ?, ?, ?)",  # noqa: S608
                                   rows)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            n += len(rows)
        return n

    def _part(self, body: Body, i: int) -> list[c.Product]:
        sha = body.parts[i]
        size = self.blobs.size(sha) if self.blobs is not None else None
        if size is not None and size > c.MAX_PART_BYTES:  # refused before it is read
            raise DocRefused("oversized", f"parts_sha256[{i}]: {size} bytes, at most "
                             f"{c.MAX_PART_BYTES}: split the snapshot into more parts")
        raw = self.blobs.get(sha) if self.blobs is not None else None
        if raw is None:  # removed meanwhile (a content install prunes files it does not name)
            raise DocDeferred([sha], f"snapshot {body.snapshot}: part {i} is gone")
        try:
            items = json.loads(raw)
        except (ValueError, RecursionError):
            raise DocRefused("malformed", f"parts_sha256[{i}]: not a JSON list of "
                             "products") from None
        return products(items, f"parts[{i}]")

    def _unpin(self) -> None:
        if self.blobs is not None:
            self.blobs.unpin(PIN)

    def _forget_parts(self, shas: list[str]) -> None:
        """The parts are in the catalog now: their files are not kept twice; and whatever a
        snapshot waited for before, this document replaced it."""
        self._unpin()
        if self.blobs is not None:
            for sha in shas:
                self.blobs.path(sha).unlink(missing_ok=True)

    @staticmethod
    def _row(p: c.Product, issued: float) -> tuple[str, str | None, str, float]:
        return p["sku"], p["gtin"], json.dumps(p, separators=(",", ":")), issued

    def _insert(self, db: sqlite3.Connection, found: list[c.Product], issued: float) -> None:
        db.executemany("INSERT INTO catalog VALUES (?, ?, ?, ?)",
                       [self._row(p, issued) for p in found])

    def _put(self, db: sqlite3.Connection, found: list[c.Product], issued: float) -> None:
        # not INSERT OR REPLACE: that would delete another SKU holding the GTIN, unseen
        db.executemany(
            "INSERT INTO catalog VALUES (?, ?, ?, ?) ON CONFLICT (sku) DO UPDATE "
            "SET gtin = excluded.gtin, product = excluded.product, "
            "priced_at = excluded.priced_at",
            [self._row(p, issued) for p in found],
        )

    # --- reading ---------------------------------------------------------------------------

    def state(self) -> tuple[str, int, float, float] | None:
        """(snapshot, version, issued, applied_at) of the catalog in use, or None."""
        with self._store.reading() as db:
            row = db.execute("SELECT snapshot, version, issued, applied_at FROM catalog_state"
                             ).fetchone()
        return (str(row[0]), int(row[1]), float(row[2]), float(row[3])) if row else None

    def lookup(self, gtin: str = "", sku: str = "") -> tuple[c.Product, float] | None:
        """The product and when its price was issued, or None."""
        with self._store.reading() as db:
            if gtin:
                row = db.execute(
                    "SELECT product, priced_at FROM catalog WHERE gtin = ?", (gtin,)
                ).fetchone()
            else:
                row = db.execute(
                    "SELECT product, priced_at FROM catalog WHERE sku = ?", (sku,)
                ).fetchone()
        if row is None:
            return None
        product: c.Product = json.loads(row[0])
        return product, float(row[1])

    def count(self) -> int:
        with self._lock:
            return self._summary["products"]

    def _summarise(self) -> Summary:
        with self._store.reading() as db:
            n, oldest, newest = db.execute(
                "SELECT COUNT(*), MIN(priced_at), MAX(priced_at) FROM catalog").fetchone()
        state = self.state()
        return Summary(
            products=int(n), snapshot=state[0] if state else None,
            version=state[1] if state else None, applied_at=state[3] if state else None,
            priced_oldest=oldest, priced_newest=newest)

    def _refresh(self) -> None:
        summary = self._summarise()
        with self._lock:
            self._summary = summary

    def status(self, waiting_parts: int = 0) -> CatalogStatus:
        """The status document's catalog section: read from memory (it is built on the
        loop every few seconds); `waiting_parts`: parts a snapshot still waits for."""
        with self._lock:
            s = self._summary
        now = self.clock()
        ages = {k: round(max(0.0, now - t), 1)
                for k, t in (("oldest", s["priced_oldest"]), ("newest", s["priced_newest"]))
                if t is not None}
        return CatalogStatus(products=int(s["products"]), snapshot=s["snapshot"],
                               version=s["version"], applied_at=s["applied_at"],
                               prices_age_s=ages, waiting_parts=waiting_parts)


def catalog_applier(catalog: CatalogStore) -> Callable[[Doc], object]:
    def apply(doc: Doc) -> None:
        log.info("catalog v%s applied: %s", doc.version, catalog.apply(doc))

    return apply


def lookup_op(
    catalog: CatalogStore, online: Callable[[], bool]
) -> Callable[[dict[str, Any]], c.CatalogReply]:
    """The bus's catalog-lookup op (a worker thread): {"gtin": 8-14 digits} or {"sku": id}."""

    def op(msg: dict[str, Any]) -> c.CatalogReply:
        gtin, sku = msg.get("gtin"), msg.get("sku")
        if isinstance(gtin, str) and sku is None:
            try:
                gtin = gtin14(gtin)
            except GtinError as exc:
                raise AgentError(Reason.BUS_PROTOCOL, f"gtin: {exc}") from None
            found = catalog.lookup(gtin=gtin)
        elif isinstance(sku, str) and gtin is None and c.SKU.fullmatch(sku):
            found = catalog.lookup(sku=sku)
        else:
            raise AgentError(
                Reason.BUS_PROTOCOL,
                'catalog-lookup takes {"gtin": "<8 to 14 digits>"} or {"sku": "<SKU>"}',
            )
        reply = c.CatalogReply(
            ok=True, found=found is not None, online=online(), products=catalog.count()
        )
        if found is not None:
            reply["product"], reply["priced_at"] = found
            reply["age_s"] = round(max(0.0, catalog.clock() - found[1]), 1)
        return reply

    return op
