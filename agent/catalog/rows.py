"""A catalog document's body checked field by field: every problem named by its place
(`products[3].price`), the first few told; one bad product refuses the whole document."""

from __future__ import annotations

import unicodedata
from typing import Any

from agent.contracts import catalog as c
from agent.storelink.docs import Doc, DocRefused
from drivers.qr.gtin import GtinError, gtin14

MAX_PROBLEMS_TOLD = 5


def _int(value: Any, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= high


def _shown(c: str) -> bool:
    """A character a name may hold: a printable one, a space of any width (a no-break space
    in "0,5 l", a narrow one before "%": catalogs exported from shop systems are full of
    them), a zero-width joiner or non-joiner (emoji sequences, Persian, Indic scripts) or a
    soft hyphen (where a long German word may break: "Kaffee\u00adbohnen")."""
    return c.isprintable() or c in "\u200c\u200d\u00ad" or unicodedata.category(c) == "Zs"


def _text(value: Any, limit: int) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= limit
        and (value.isprintable() or all(map(_shown, value)))
        and value.strip() == value
    )


def product(raw: Any, where: str) -> tuple[c.Product | None, list[str]]:
    """The product of one entry, or None and what is wrong with it."""
    if not isinstance(raw, dict):
        return None, [f"{where}: must be an object"]
    bad: list[str] = []
    sku = raw.get("sku")
    if not isinstance(sku, str) or not c.SKU.fullmatch(sku):
        bad.append(f"{where}.sku: 1-64 letters, digits or . _ / -")
    gtin = raw.get("gtin")
    if gtin is not None:
        try:
            gtin = gtin14(gtin) if isinstance(gtin, str) else gtin14("")
        except GtinError as exc:
            bad.append(f"{where}.gtin: {exc} ({exc.code})")
    name = raw.get("name")
    if (
        not isinstance(name, dict)
        or not 0 < len(name) <= c.MAX_LANGUAGES
        or not all(
            isinstance(k, str) and c.LANGUAGE.fullmatch(k) and _text(v, c.MAX_NAME)
            for k, v in name.items()
        )
    ):
        bad.append(
            f"{where}.name: {{language: name}}, 1-{c.MAX_LANGUAGES} two-letter "
            f"languages, names of 1-{c.MAX_NAME} printable characters"
        )
    if not _int(raw.get("price"), c.MAX_PRICE):
        bad.append(f"{where}.price: whole minor units (cents), 0 to {c.MAX_PRICE}")
    currency = raw.get("currency")
    if not isinstance(currency, str) or not c.CURRENCY.fullmatch(currency):
        bad.append(f"{where}.currency: an ISO 4217 code (EUR)")
    if not _int(raw.get("stock", 0), c.MAX_STOCK):
        bad.append(f"{where}.stock: a whole number, 0 to {c.MAX_STOCK}")
    nearby = raw.get("nearby", [])
    if (
        not isinstance(nearby, list)
        or len(nearby) > c.MAX_NEARBY
        or not all(
            isinstance(n, dict)
            and isinstance(n.get("store"), str)
            and c.STORE.fullmatch(n["store"])
            and _text(n.get("name"), 80)
            and _int(n.get("stock"), c.MAX_STOCK)
            for n in nearby
        )
    ):
        bad.append(f"{where}.nearby: at most {c.MAX_NEARBY} of {{store, name, stock}}")
    image = raw.get("image")
    if image is not None and (not isinstance(image, str) or not c.SHA256.fullmatch(image)):
        bad.append(f"{where}.image: the picture's SHA-256, 64 lowercase hex digits")
    unknown = set(raw) - {"sku", "gtin", "name", "price", "currency", "stock", "nearby", "image"}
    if unknown:
        bad.append(f"{where}: unknown field {sorted(unknown)[0][:40]!r}")
    if bad:
        return None, bad
    return c.Product(
        sku=str(sku),
        gtin=gtin,
        name={str(k): str(v) for k, v in dict(name or {}).items()},
        price=raw["price"],
        currency=str(currency),
        stock=raw.get("stock", 0),
        nearby=[c.Nearby(store=n["store"], name=n["name"], stock=n["stock"]) for n in nearby],
        image=image,
    ), []


def products(raws: Any, where: str = "products") -> list[c.Product]:
    """The checked products of a list (a document's `products`, or a part's); DocRefused
    naming the first few problems by their place (`parts[2][7].price`)."""
    if not isinstance(raws, list) or len(raws) > c.MAX_PRODUCTS:
        raise DocRefused(
            "malformed",
            f'"{where}" is a list of at most {c.MAX_PRODUCTS} products: a larger catalog is '
            "a snapshot in parts (parts_sha256)",
        )
    out, problems = [], []
    for i, raw in enumerate(raws):
        p, bad = product(raw, f"{where}[{i}]")
        problems += bad
        if p is not None:
            out.append(p)
    problems += [f"{where}{p.removeprefix('products')}" for p in twice(out)]
    if problems:
        raise DocRefused("malformed", "; ".join(problems[:MAX_PROBLEMS_TOLD]))
    return out


def twice(found: list[c.Product]) -> list[str]:
    """A problem for each SKU or GTIN two products share."""
    seen: dict[tuple[str, str], int] = {}
    out = []
    for i, p in enumerate(found):
        for key in ("sku", "gtin"):
            value = p["sku"] if key == "sku" else p["gtin"]
            if value is None:
                continue
            if (key, value) in seen:
                out.append(f"products[{i}].{key}: {value!r} is products[{seen[key, value]}]'s")
            else:
                seen[key, value] = i
    return out


def _hashes(value: Any, what: str) -> list[str]:
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= c.MAX_PARTS
        or not all(isinstance(h, str) and c.SHA256.fullmatch(h) for h in value)
        or len(set(value)) != len(value)
    ):
        raise DocRefused(
            "malformed",
            f"{what}: 1 to {c.MAX_PARTS} different SHA-256s (64 lowercase hex digits), one "
            "per part",
        )
    return list(value)


class Body:
    """A catalog document's body, checked (agent/contracts/catalog.py has its forms)."""

    def __init__(self, doc: Doc) -> None:
        body = doc.body
        if not isinstance(body, dict) or body.get("mode") not in ("snapshot", "increment"):
            raise DocRefused(
                "malformed",
                'a catalog document needs {"mode": "snapshot" or "increment", "products": [...]}',
            )
        self.mode: str = body["mode"]
        unknown = set(body) - {"mode", "products", "snapshot", "parts_sha256", "removed"}
        if "part" in unknown or "parts" in unknown:
            raise DocRefused(
                "malformed",
                "part and parts: a snapshot in parts is one document naming its parts by "
                "SHA-256 (parts_sha256), each part a list of products published retained on "
                "o2o/v1/{store}/all/blob/<sha256> (parts published as documents of their own "
                "overwrite each other on the retained catalog topic)",
            )
        if unknown:
            raise DocRefused("malformed", f"unknown field {sorted(unknown)[0][:40]!r}")
        snapshot = body.get("snapshot", f"v{doc.version}" if self.mode == "snapshot" else None)
        if snapshot is not None and (
            not isinstance(snapshot, str) or not c.SNAPSHOT.fullmatch(snapshot)
        ):
            raise DocRefused("malformed", "snapshot: an id of 1-64 letters, digits or . _ : -")
        # a snapshot's id; an increment's base: the snapshot it changes (None: the one in use)
        self.snapshot: str | None = snapshot
        self.parts: list[str] = (
            _hashes(body["parts_sha256"], "parts_sha256") if "parts_sha256" in body else []
        )
        if self.mode == "snapshot" and self.parts and "products" in body:
            raise DocRefused(
                "malformed", "a snapshot has its products inline or in parts_sha256, not both"
            )
        if self.mode == "increment" and self.parts and snapshot is None:
            raise DocRefused("malformed", "parts_sha256: name the snapshot they make (snapshot)")
        self.products = (
            [] if self.mode == "snapshot" and self.parts else products(body.get("products"))
        )
        removed = body.get("removed", [])
        if self.mode == "snapshot" and removed:
            raise DocRefused("malformed", "a snapshot removes nothing: it is the catalog")
        if (
            not isinstance(removed, list)
            or len(removed) > c.MAX_REMOVED
            or not all(isinstance(s, str) and c.SKU.fullmatch(s) for s in removed)
        ):
            raise DocRefused("malformed", f"removed: at most {c.MAX_REMOVED} SKUs")
        self.removed: list[str] = removed
