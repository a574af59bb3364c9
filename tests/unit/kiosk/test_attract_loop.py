"""Back home, the attract loop starts again at its first slide (the next shopper sees it from
the start, and a served kiosk and its test twin show the same slide)."""

from __future__ import annotations

import asyncio

from textual.widgets import Static

from kiosk.screens.attract import AttractScreen
from tests.snapshots.kiosk_screens import kiosk


def test_the_loop_starts_again_at_home() -> None:
    async def run() -> None:
        app = kiosk("en")
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            attract = app.screen
            assert isinstance(attract, AttractScreen)
            first = str(attract.query_one("#slide-title", Static).render())
            attract.next_slide()
            await pilot.pause()
            assert str(attract.query_one("#slide-title", Static).render()) != first
            app.go("privacy")  # a shopper leaves home and comes back
            await pilot.pause()
            app.home()
            await pilot.pause()
            assert app.screen is attract and attract.slide == 0
            assert str(attract.query_one("#slide-title", Static).render()) == first
    asyncio.run(run())
