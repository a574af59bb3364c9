"""SVG snapshots of the kiosk's main screens in English and German (pytest-textual-snapshot;
`pytest --snapshot-update` after a deliberate change), and every screen fitting a 120x40
kiosk without scrolling in every language."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from agent.config import Config, DeviceConfig, KioskConfig
from kiosk.app import KioskApp
from kiosk.i18n import load_catalogues

SIZE = (120, 40)


def kiosk(language: str) -> KioskApp:
    app = KioskApp(Config(device=DeviceConfig(store="store-1", id="kiosk-1"),
                          kiosk=KioskConfig(language=language)), connect=False)
    app.agent_up = True  # the "agent down" notice has its own test
    return app


async def _content(pilot: Any) -> None:
    pilot.app.open_page("autumn-coffee", "nfc")
    await pilot.pause()
    await pilot.click("#handoff")
    await pilot.pause()


async def _checkin(pilot: Any) -> None:
    await pilot.click("#go-pickup")
    await pilot.pause()
    for key in "K7Q":
        await pilot.click(f"#key-{key}")
    await pilot.pause()


async def _result(pilot: Any) -> None:
    pilot.app.show_result("pickup.ok", {"name": "Anna", "minutes": 3})
    await pilot.pause()


async def _survey(pilot: Any) -> None:
    pilot.app.go("survey")
    await pilot.pause()


async def _attract(pilot: Any) -> None:
    await pilot.pause()


SCREENS: dict[str, Callable[[Any], Awaitable[None]]] = {
    "attract": _attract, "content": _content, "checkin": _checkin, "result": _result,
    "survey": _survey}


@pytest.mark.parametrize("language", ["en", "de"])
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen_snapshot(snap_compare: Any, screen: str, language: str) -> None:
    assert snap_compare(kiosk(language), terminal_size=SIZE, run_before=SCREENS[screen])


@pytest.mark.parametrize("language", sorted(load_catalogues()))
def test_every_screen_fits_without_scrolling(language: str) -> None:
    async def run() -> None:
        for name, go in SCREENS.items():
            app = kiosk(language)
            async with app.run_test(size=SIZE) as pilot:
                await go(pilot)
                body = app.screen.query_one("#body")
                assert body.virtual_size.height <= body.size.height, (name, language)
                for button in app.screen.query("Button"):
                    if not button.display:
                        continue
                    label = str(button.label)
                    # a label wider than its button is cut off on the screen
                    assert len(label) <= button.content_size.width, (name, language, label)
    asyncio.run(run())
