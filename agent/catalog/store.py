"""The catalog in store.db: signed catalog documents applied (agent/catalog/rows.py checks
them), products looked up by GTIN or SKU for the kiosk's product card."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.catalog.rows import Body, twice
from agent.contracts import catalog as c
from agent.errors import AgentError, Reason
from agent.localdb import retry_when_full
from agent.storedb import Repository, StoreDatabase
from agent.storelink.docs import Doc, DocRefused
from drivers.qr.gtin import GtinError, gtin14

log = logging.getLogger(__name__)
REFUSED = "refused: "


class CatalogStore(Repository):
    def __init__(self, store: Path | StoreDatabase, clock: Callable[[], float] = time.time) -> None:
        super().__init__(store)
        self.clock = clock

    @retry_when_full
    def apply(self, doc: Doc) -> str:
        """Apply a verified catalog document; what it did, in words (logged). DocRefused
        when its body is wrong or it clashes with the catalog (nothing of it applied)."""
        body = Body(doc)
        try:
            with self._store.writing() as db:
                if body.mode == "increment":
                    done = self._increment(db, body, doc.issued)
                else:
                    done = self._part(db, body, doc.issued)
        except sqlite3.IntegrityError:
            raise DocRefused(
                "conflict",
                "a GTIN of the document is another SKU's in the "
                "catalog; nothing of the document applied",
            ) from None
        if done.startswith(REFUSED):
            raise DocRefused("malformed", done.removeprefix(REFUSED))
        return done

    @staticmethod
    def _put(db: sqlite3.Connection, products: list[c.Product], issued: float) -> None:
        # not INSERT OR REPLACE: that would delete another SKU holding the GTIN, unseen
        db.executemany(
            "INSERT INTO catalog VALUES (?, ?, ?, ?) ON CONFLICT (sku) DO UPDATE "
            "SET gtin = excluded.gtin, product = excluded.product, "
            "priced_at = excluded.priced_at",
            [(p["sku"], p["gtin"], json.dumps(p, separators=(",", ":")), issued) for p in products],
        )

    def _increment(self, db: sqlite3.Connection, body: Body, issued: float) -> str:
        # a product's GTIN moving to another SKU: the old holder loses it first in the same
        # document (removed), else the UNIQUE column refuses the document
        db.executemany("DELETE FROM catalog WHERE sku = ?", [(s,) for s in body.removed])
        self._put(db, body.products, issued)
        return f"{len(body.products)} products changed, {len(body.removed)} removed"

    def _part(self, db: sqlite3.Connection, body: Body, issued: float) -> str:
        # a part of another snapshot: that one is abandoned (the newest snapshot wins)
        db.execute(
            "DELETE FROM catalog_parts WHERE snapshot != ? OR parts != ?",
            (body.snapshot, body.parts),
        )
        db.execute(
            "INSERT OR REPLACE INTO catalog_parts VALUES (?, ?, ?, ?, ?)",
            (
                body.snapshot,
                body.part,
                body.parts,
                json.dumps(body.products, separators=(",", ":")),
                issued,
            ),
        )
        have = db.execute(
            "SELECT part, products, issued FROM catalog_parts ORDER BY part"
        ).fetchall()
        if len(have) < body.parts:
            return (
                f"snapshot {body.snapshot}: part {body.part} of {body.parts} kept, "
                f"{body.parts - len(have)} to come"
            )
        everything: list[c.Product] = []
        for _, products, _ in have:
            everything += json.loads(products)
        clashes = twice(everything)
        db.execute("DELETE FROM catalog_parts")
        if clashes:  # refused once this transaction (the parts dropped) is committed
            return (
                REFUSED
                + f"snapshot {body.snapshot}'s parts disagree: "
                + "; ".join(clashes[:3])
                + "; the catalog stays as it was"
            )
        db.execute("DELETE FROM catalog")
        for _, products, part_issued in have:
            self._put(db, json.loads(products), part_issued)
        return f"snapshot {body.snapshot}: {len(everything)} products"

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
        with self._store.reading() as db:
            return int(db.execute("SELECT COUNT(*) FROM catalog").fetchone()[0])

    def waiting(self) -> dict[str, Any]:
        """The snapshot whose parts are still coming ({} when none)."""
        with self._store.reading() as db:
            rows = db.execute(
                "SELECT snapshot, parts, COUNT(*) FROM catalog_parts GROUP BY snapshot"
            ).fetchall()
        return {"snapshot": rows[0][0], "parts": rows[0][1], "have": rows[0][2]} if rows else {}


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
