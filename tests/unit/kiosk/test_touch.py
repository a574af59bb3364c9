"""A touch screen has no hover: after a tap nothing stays lit, neither the tapped button nor
the one the next screen puts under the lifted finger."""

from __future__ import annotations

import asyncio

from tests.snapshots.kiosk_screens import kiosk


def test_no_hover_highlight_stays_after_a_tap() -> None:
    async def run() -> None:
        app = kiosk("en")
        async with app.run_test(size=(100, 30)) as pilot:
            lit = lambda: [w.id for w in app.screen.walk_children() if w.mouse_hover]  # noqa: E731
            await pilot.hover("#go-browse")  # the finger comes down: a move, then the tap
            assert lit() == ["go-browse"]
            await pilot.click("#go-browse")
            await pilot.pause()
            assert lit() == []
            for _ in range(2):  # the arrow stays under the finger, offer after offer
                await pilot.hover("#offer-next")
                await pilot.click("#offer-next")
                await pilot.pause()
                assert lit() == [] and app.hover_over is None
            await pilot.hover("#back")  # a mouse that moves again hovers again
            assert lit() == ["back"]
    asyncio.run(run())
