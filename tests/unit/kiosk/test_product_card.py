"""The product card on the grids stores use: every control whole on screen at 80x24, 88x18
(a served 800x480 screen), 80x65 (portrait) and 200x60, a long or hostile name shown as plain
text, the price in the currency's minor units, and the card's texts per stock case."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from textual.widgets import Static

from kiosk.screens.product import ProductScreen, money
from tests.snapshots.kiosk_screens import kiosk, problems

MUG: dict[str, Any] = {
    "sku": "MUG-1",
    "gtin": "04006381333931",
    "name": {"en": "Blue mug", "de": "Blaue Tasse"},
    "price": 1299,
    "currency": "EUR",
    "stock": 3,
    "nearby": [],
    "image": None,
}


def reply(
    product: dict[str, Any] | None, online: bool = True, age_s: float = 5.0
) -> dict[str, Any]:
    if product is None:
        return {"ok": True, "found": False, "online": online, "products": 1}
    return {
        "ok": True,
        "found": True,
        "product": product,
        "priced_at": 0.0,
        "age_s": age_s,
        "online": online,
        "products": 1,
    }


def shown(
    r: dict[str, Any] | None, size: tuple[int, int] = (80, 24), language: str = "en"
) -> tuple[list[str], list[str]]:
    async def run() -> tuple[list[str], list[str]]:
        app = kiosk(language)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            app.push_screen(ProductScreen("04006381333931", r))
            await pilot.pause()
            texts = [
                str(w.render())
                for w in app.screen.query(Static)
                if w.id in ("message", "price", "stock", "prices-age") and w.display
            ]
            return texts, problems(app)

    return asyncio.run(run())


@pytest.mark.parametrize("size", [(80, 24), (88, 18), (80, 65), (200, 60)])
def test_the_card_is_whole_on_every_grid(size: tuple[int, int]) -> None:
    long_name = {
        **MUG,
        "name": {"en": "Extra large stoneware breakfast mug " * 4},
        "stock": 0,
        "nearby": [{"store": "b2", "name": "Berlin Mitte", "stock": 1}],
    }
    texts, bad = shown(reply(long_name, online=False, age_s=7200), size)
    assert bad == [], bad
    assert texts[1:] == ["€ 12.99", "Available at Berlin Mitte", "Offline: prices as of 2 h ago."]
    texts, bad = shown(reply(None), size)
    assert bad == [] and texts == [
        "Sorry, we don't know this product yet. Our staff are happy to help."
    ]


def test_what_the_card_says_per_case() -> None:
    assert shown(reply(MUG))[0] == ["Blue mug", "€ 12.99", "3 in stock here"]  # online
    assert shown(reply(MUG, online=False, age_s=30))[0][3:] == []  # fresh: nothing to say
    assert shown(reply({**MUG, "stock": 0}))[0][2] == (
        "Out of stock right now. Our staff can order it for you."
    )
    assert shown(reply(MUG), language="es")[0][:2] == ["Blue mug", "12,99 €"]  # no es name
    assert shown(None)[0] == [
        "Product details are not available right now. Our staff are happy to help."
    ]
    hostile = {**MUG, "name": {"en": "[b]Mug[/b] [@click=app.quit]x[/]"}}
    assert shown(reply(hostile))[0][0] == "[b]Mug[/b] [@click=app.quit]x[/]"


def test_money_in_minor_units() -> None:
    assert money(1299, "EUR", ".") == "12.99"
    assert money(5, "EUR", ",") == "0,05"
    assert money(1500, "JPY", ".") == "1500"
    assert money(12345, "KWD", ".") == "12.345"
