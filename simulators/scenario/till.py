"""The till's part of a scenario (model.py reads the rest): [[offer]], a campaign's signed
offer code that a [[scan]] shows or a sale redeems, and [[sale]], a receipt the till posts to
the agent's tills endpoint (simulators/pos.py) — each mistake named by its place."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from drivers.qr.offer import CAMPAIGN, CODE_ID, TEXT_ID
from simulators.errors import ScenarioError

# model.py's readers: a field of an entry checked for its type (`_get`), an entry's time
Get = Callable[..., Any]
Items = Iterable[tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class Offer:
    """A campaign's signed offer code (drivers/qr/offer.py), signed by the stage's key."""

    id: str  # the code id: what the one-time ledger knows it by
    campaign: str
    text: str = "coffee-20"  # the offer text id the kiosk words ("20 % off coffee")
    stores: tuple[str, ...] = ()  # where it is good; () = any store


@dataclass(frozen=True)
class Sale:
    """A receipt the till posts (agent/contracts/pos.py): its lines, total and the offers it
    redeems; `app` names the shopper-app user (iBeacon minor) whose visit it must be linked
    to (0: no visit expected); `resend` posts it a second time, as a till that did not hear
    the answer does (counted once)."""

    at: float
    receipt: str
    total: int
    lines: tuple[dict[str, Any], ...]
    currency: str = "EUR"
    payment: str = "card"
    offers: tuple[str, ...] = ()  # [[offer]] ids
    app: int = 0
    resend: bool = False

    def request(self, codes: dict[str, str]) -> dict[str, Any]:
        """The till's request body, with each offer's code from `codes` (id -> code)."""
        body: dict[str, Any] = {"receipt": self.receipt, "total": self.total,
                                "currency": self.currency, "payment": self.payment,
                                "lines": [dict(line) for line in self.lines]}
        if self.offers:
            body["offers"] = [codes[o] for o in self.offers]
        return body


def parse_offers(items: Items, get: Get) -> dict[str, Offer]:
    out: dict[str, Offer] = {}
    for where, o in items:
        stores = get(o, "stores", list, where, [])
        offer = Offer(get(o, "id", str, where), get(o, "campaign", str, where),
                      get(o, "text", str, where, "coffee-20"), tuple(map(str, stores)))
        for name, value, pattern in (("id", offer.id, CODE_ID),
                                     ("campaign", offer.campaign, CAMPAIGN),
                                     ("text", offer.text, TEXT_ID)):
            if not pattern.fullmatch(value):
                raise ScenarioError(f"{where}.{name}: {value!r} does not fit an offer code "
                                    f"({pattern.pattern})")
        if offer.id in out:
            raise ScenarioError(f"{where}.id: {offer.id!r} is another [[offer]]'s")
        out[offer.id] = offer
    return out


def parse_sales(items: Items, time: Callable[[dict[str, Any], str], float], get: Get,
                offers: Mapping[str, Offer], apps: set[int]) -> list[Sale]:
    """`apps`: the shopper-app users of the scenario's [[shopper]]s."""
    out: list[Sale] = []
    for where, s in items:
        lines = get(s, "lines", list, where)
        named = get(s, "offers", list, where, [])
        sale = Sale(time(s, where), get(s, "receipt", str, where), get(s, "total", int, where),
                    tuple(lines), get(s, "currency", str, where, "EUR"),
                    get(s, "payment", str, where, "card"), tuple(map(str, named)),
                    get(s, "app", int, where, 0), get(s, "resend", bool, where, False))
        if not lines or not all(isinstance(line, dict) for line in lines):
            raise ScenarioError(f"{where}.lines: a list of {{sku or gtin, qty, amount}} tables")
        unknown = [o for o in sale.offers if o not in offers]
        if unknown:
            raise ScenarioError(f"{where}.offers: {unknown} — name offers of [[offer]]")
        if sale.app and sale.app not in apps:
            raise ScenarioError(f"{where}.app: no [[shopper]] with app = {sale.app}")
        if any(x.receipt == sale.receipt for x in out):  # a resend is `resend = true`
            raise ScenarioError(f"{where}.receipt: {sale.receipt!r} is another [[sale]]'s")
        out.append(sale)
    return out
