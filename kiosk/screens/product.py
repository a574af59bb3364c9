"""A product's card, opened by its barcode at the camera (EAN-13, UPC-A, EAN-8 or a GS1
Digital Link): its name in the shopper's language, its price, "3 in stock here" or where it
is available nearby, and "Reserve for pickup" (an o2o.kiosk.reserve event upstream makes the
reservation). With the agent offline the card says how old the prices are; a GTIN the catalog
does not have is said kindly, as is a catalog the kiosk cannot reach. Everything on the card
comes from a signed catalog and is still shown as plain text, never markup."""

from __future__ import annotations

from typing import Any, Final

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Static

from agent.contracts import events as ev
from kiosk.safe_text import NAME_MAX, plain
from kiosk.screens.base import ShopperScreen

# ISO 4217 minor units other than 2 (the currencies a store is likely to price in)
EXPONENT: Final = {
    "JPY": 0,
    "KRW": 0,
    "ISK": 0,
    "CLP": 0,
    "HUF": 2,
    "BHD": 3,
    "KWD": 3,
    "JOD": 3,
    "OMR": 3,
    "TND": 3,
}
SYMBOL: Final = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "CHF": "CHF"}
NEARBY_SHOWN: Final = 3  # stores named on the card; more would not fit a short screen
OFFLINE_SAYS_AGE_S: Final = 60.0  # prices issued within the last minute: nothing to say


def money(price: int, currency: str, decimal_mark: str) -> str:
    """12,99 € / €12.99 shape is the catalogue's ("product.price"); this is the amount."""
    exponent = EXPONENT.get(currency, 2)
    whole, part = divmod(price, 10**exponent)
    return f"{whole}{decimal_mark}{part:0{exponent}d}" if exponent else str(whole)


class ProductScreen(ShopperScreen):
    name_for_events = "product"

    def __init__(self, gtin: str, reply: dict[str, Any] | None) -> None:
        """`reply`: the agent's catalog-lookup answer, None when it could not be asked."""
        super().__init__(classes="result product")
        self.gtin = gtin
        self.reply = reply
        product = reply.get("product") if reply and reply.get("found") else None
        self.product: dict[str, Any] | None = product if isinstance(product, dict) else None
        self.reserved = False

    @property
    def outcome(self) -> str:
        if self.reply is None:
            return "product.unavailable"
        return "product.found" if self.product is not None else "product.unknown"

    def product_name(self) -> str:
        assert self.product is not None
        names = self.product.get("name") or {}
        text = (
            names.get(self.kiosk.translator.language)
            or names.get("en")
            or next(iter(names.values()), self.product.get("sku", ""))
        )
        return plain(str(text), 2 * NAME_MAX)

    def price(self) -> str:
        assert self.product is not None
        currency = plain(str(self.product.get("currency", "")), 3)
        amount = money(int(self.product.get("price", 0)), currency, self.t("product.decimal"))
        return self.t("product.price", amount=amount, currency=SYMBOL.get(currency, currency))

    def stock(self) -> str:
        assert self.product is not None
        here = int(self.product.get("stock", 0))
        if here > 0:
            return self.t("product.stock.here", n=here)
        nearby = [
            plain(str(n.get("name", "")), NAME_MAX)
            for n in self.product.get("nearby") or ()
            if int(n.get("stock", 0)) > 0
        ]
        if nearby:
            return self.t("product.stock.nearby", stores=", ".join(nearby[:NEARBY_SHOWN]))
        return self.t("product.stock.none")

    def age(self) -> str:
        """ "Offline: prices as of 3 hours ago" while the agent cannot reach upstream."""
        reply = self.reply or {}
        age = float(reply.get("age_s", 0.0))
        if reply.get("online", True) or age < OFFLINE_SAYS_AGE_S:
            return ""
        if age < 120 * 60:
            span = self.t("product.age.minutes", n=max(1, round(age / 60)))
        elif age < 48 * 3600:
            span = self.t("product.age.hours", n=round(age / 3600))
        else:
            span = self.t("product.age.days", n=round(age / 86400))
        return self.t("product.offline", age=span)

    def body(self) -> ComposeResult:
        if self.product is None:
            yield Static(self.t(self.outcome), id="message", classes="problem", markup=False)
            yield Button(self.t("common.done"), id="done", variant="primary")
            return
        yield Static(self.product_name(), id="message", classes="ok", markup=False)
        yield Static(self.price(), id="price", markup=False)
        yield Static(self.stock(), id="stock", markup=False)
        said = self.age()
        age = Static(said, id="prices-age", markup=False)
        age.display = bool(said)  # no empty row on a short screen
        yield age
        # side by side: stacked, the two buttons did not fit a served 800x480 screen (88x18)
        actions = Horizontal(
            Button(self.t("product.reserve"), id="reserve"),
            Button(self.t("common.done"), id="done", variant="primary"),
            id="product-actions",
        )
        actions.styles.height = "auto"
        yield actions

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "done":
            self.kiosk.home()
        elif event.button.id == "reserve" and self.product is not None and not self.reserved:
            self.reserved = True
            p = self.product
            self.kiosk.record(
                ev.KIOSK_RESERVE,
                ev.KioskReserve(
                    sku=str(p.get("sku", "")),
                    gtin=p.get("gtin"),
                    price=int(p.get("price", 0)),
                    currency=str(p.get("currency", "")),
                    stock_here=int(p.get("stock", 0)),
                    language=self.kiosk.translator.language,
                ),
            )
            self.query_one("#stock", Static).update(self.t("product.reserved"))
            event.button.disabled = True
