"""A tap that changes the content card's page lays the card out once, and the card shows
the new page whole: its text (scrolled to the end when long) and its picture or none."""

from __future__ import annotations

import asyncio
import dataclasses

from kiosk.app import KioskApp
from kiosk.widgets.image_view import ImageView
from kiosk.widgets.one_pass import OnePassScroll
from tests.snapshots.kiosk_screens import kiosk


def test_a_page_change_lays_the_card_out_once() -> None:
    async def run() -> None:
        app = kiosk("en")
        async with app.run_test(size=(97, 27)) as pilot:
            app.open_page("rain-jacket", "touch")
            await pilot.pause(0.2)
            layouts: list[object] = []
            app.screen.screen_layout_refresh_signal.subscribe(app, layouts.append)
            # the picture comes and goes, the text changes length: each changes sizes
            for page in ("autumn-coffee", "rain-jacket", "loyalty", "autumn-coffee"):
                layouts.clear()
                app.open_page(page, "touch")
                await pilot.pause(0.2)  # the second pass came ~30-50 ms after the first
                assert len(layouts) == 1, page
                picture = app.screen.query_one("#card-picture", ImageView)
                assert (picture.picture is not None) == (page == "autumn-coffee")
                if picture.picture is not None:  # drawn at the size the layout gave it
                    assert picture.region.size == picture.cells and picture.cells.area > 0
                    assert picture.render_line(0).cell_length == picture.cells.width
                text = str(app.screen.query_one("#text").render())
                assert text.split()[0] in str(app.bundle.pages[page].text)
    asyncio.run(run())


def test_a_long_text_after_a_short_one_scrolls_to_its_end() -> None:
    """The box's scrollable height comes with the one pass: the bar shows and the last
    words are reached, for a long text that replaces a short one in place."""
    async def run() -> None:
        app = kiosk("en")
        page = app.bundle.pages["rain-jacket"]
        words = " ".join(f"word{i}" for i in range(200)) + " THE-END"
        app.bundle.pages["rain-jacket"] = dataclasses.replace(page, text={"en": words})
        async with app.run_test(size=(97, 27)) as pilot:
            app.open_page("autumn-coffee", "touch")
            await pilot.pause(0.2)
            app.open_page("rain-jacket", "touch")
            await pilot.pause(0.2)
            box = app.screen.query_one("#text-box", OnePassScroll)
            assert box.max_scroll_y > 0 and box.show_vertical_scrollbar
            assert "THE-END" not in _shown(app)
            box.scroll_end(animate=False)
            await pilot.pause(0.2)
            assert "THE-END" in _shown(app)
            app.open_page("autumn-coffee", "touch")  # short again: nothing to scroll
            await pilot.pause(0.2)
            assert box.max_scroll_y == 0 and not box.show_vertical_scrollbar
    asyncio.run(run())


def _shown(app: KioskApp) -> str:
    return "".join(str(s.text) for s in app.screen._compositor.render_strips())
