"""What a shopper meets on the touch screen: offers to browse, a survey with nothing picked
in advance, no focus highlight left for the next shopper, and a closed staff mode that asks
for staff in the shopper's language (the set-up instruction goes to the log)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from textual.widgets import Button, Static

from kiosk.screens.content import ContentScreen
from tests.snapshots.kiosk_screens import kiosk


def _title(app: object) -> str:
    return str(app.screen.query_one("#title", Static).render())  # type: ignore[attr-defined]


def test_todays_offers_are_browsable_both_ways() -> None:
    async def run() -> None:
        app = kiosk("en")
        async with app.run_test(size=(100, 26)) as pilot:
            await pilot.click("#go-browse")
            await pilot.pause()
            assert isinstance(app.screen, ContentScreen)
            seen = [_title(app)]
            assert str(app.screen.query_one("#offer-at", Static).render()) == "1 / 3"
            for _ in range(3):
                await pilot.click("#offer-next")
                await pilot.pause()
                seen.append(_title(app))
            assert seen == ["Autumn coffee blend", "Rain jacket, recycled",
                            "Join our loyalty club", "Autumn coffee blend"]
            await pilot.click("#offer-prev")  # from the first back round to the last
            await pilot.pause()
            assert _title(app) == "Join our loyalty club"
            views = [p for _, p in app.shown if p.startswith("page:")]
            assert views[-1] == "page:loyalty"
    asyncio.run(run())


def test_survey_answers_are_big_and_none_looks_picked() -> None:
    async def run() -> None:
        app = kiosk("en")
        async with app.run_test(size=(100, 26)) as pilot:
            app.go("survey")
            await pilot.pause()
            assert app.focused is None
            scores = [b for b in app.screen.query(Button) if b.has_class("score")]
            assert len(scores) == 5
            for b in scores:  # the row shared out, each a big target
                assert b.region.width >= 15 and b.region.height == 5, b.region
    asyncio.run(run())


def test_no_focus_highlight_stays_for_the_next_shopper() -> None:
    async def run() -> None:
        app = kiosk("en", idle_s=5, idle_warning_s=2)
        async with app.run_test(size=(100, 26)) as pilot:
            await pilot.click("#go-pickup")
            await pilot.pause()
            await pilot.click("#key-7")
            await pilot.pause()
            await app.reset_session("idle")
            await pilot.pause()
            assert app.focused is None
            await pilot.click("#go-appointment")
            await pilot.pause()
            await pilot.click("#back")
            await pilot.pause()
            assert app.focused is None
    asyncio.run(run())


def test_closed_staff_mode_asks_for_staff_in_the_shoppers_language(
        caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        app = kiosk("de")
        async with app.run_test(size=(100, 26)) as pilot:
            with caplog.at_level(logging.WARNING, logger="o2o-edge.kiosk"):
                await pilot.click("#go-staff")
                await pilot.pause()
            shown = " ".join(str(s.render()) for s in app.screen.query(Static) if s.display)
            assert "Bitte wenden Sie sich an unser Personal." in shown
            assert "staff_pin_hash" not in shown and "o2o-edge" not in shown
            assert not app.screen.query_one("#keypad").display  # nothing to type
            await pilot.click("#back")
            await pilot.pause()
            assert app.screen.id == "attract"
    asyncio.run(run())
    assert any("staff_pin_hash" in r.getMessage() for r in caplog.records)
