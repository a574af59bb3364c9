"""SVG snapshots of every kiosk screen (shopper and staff) in English and German at 120x40
and at the smallest and largest terminal sizes (pytest-textual-snapshot; `pytest
--snapshot-update` after a deliberate change), and every screen usable without scrolling at
every grid a store screen gives: terminals from 80x24 to 200x60, and what the served page
makes of the common screens (about 100x26 landscape, 80x65 portrait) — every control whole,
on screen, not under another, labels not cut, QR codes not squashed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kiosk.i18n import load_catalogues
from tests.snapshots.kiosk_screens import SCREENS, TERMINAL_SIZES, kiosk, problems

SIZE = (120, 40)
# the cell grids the served page makes (kiosk/web/app_index.html): 800x480, 1024x600,
# 1280x720, 1280x800, 1920x1080, 720x1280, 1080x1920, as Chromium reported them
SERVED_GRIDS = [(114, 26), (102, 26), (106, 26), (97, 27), (106, 27), (80, 65), (81, 67)]
TIGHTEST = [(80, 24), (80, 65)]


@pytest.mark.parametrize("language", ["en", "de"])
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen_snapshot(snap_compare: Any, screen: str, language: str) -> None:
    assert snap_compare(kiosk(language), terminal_size=SIZE, run_before=SCREENS[screen])


@pytest.mark.parametrize("size", [s for s in TERMINAL_SIZES if s != SIZE],
                         ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen_snapshot_at_terminal_size(snap_compare: Any, screen: str,
                                          size: tuple[int, int]) -> None:
    assert snap_compare(kiosk("en"), terminal_size=size, run_before=SCREENS[screen])


def _usable(language: str, sizes: list[tuple[int, int]]) -> list[str]:
    async def run() -> list[str]:
        found: list[str] = []
        for size in sizes:
            for name, go in SCREENS.items():
                app = kiosk(language)
                async with app.run_test(size=size) as pilot:
                    await go(pilot)
                    found += [f"{size} {name} {language}: {p}" for p in problems(app)]
        return found
    return asyncio.run(run())


@pytest.mark.parametrize("language", sorted(load_catalogues()))
def test_every_screen_usable_at_the_tightest_grids(language: str) -> None:
    found = _usable(language, TIGHTEST)
    assert not found, "\n".join(found)


def test_every_screen_usable_at_every_grid() -> None:
    found = _usable("en", sorted(set(TERMINAL_SIZES + SERVED_GRIDS) - set(TIGHTEST)))
    assert not found, "\n".join(found)


@pytest.mark.slow
@pytest.mark.parametrize("language", sorted(set(load_catalogues()) - {"en"}))
def test_every_screen_usable_at_every_grid_every_language(language: str) -> None:
    found = _usable(language, sorted(set(TERMINAL_SIZES + SERVED_GRIDS) - set(TIGHTEST)))
    assert not found, "\n".join(found)


def test_the_hand_off_code_and_the_shopper_bar_share_a_24_row_terminal() -> None:
    """Under 26 rows the hand-off code takes the bar's rows while it is shown; Back (on the
    card) brings the bar back."""
    async def run() -> None:
        app = kiosk("en")
        async with app.run_test(size=(80, 24)) as pilot:
            await SCREENS["content"](pilot)
            assert not app.screen.query_one("ShopperBar").display
            await pilot.click("#back")
            await pilot.pause()
            app.open_page("rain-jacket", "touch")
            await pilot.pause()
            assert app.screen.query_one("ShopperBar").display
    asyncio.run(run())


# the narrowest served grids, landscape and portrait: where a longer German or Spanish word
# wraps first
NOTICE_TIGHTEST = [(102, 26), (80, 65)]


def _usable_with_the_notice(language: str, sizes: list[tuple[int, int]]) -> list[str]:
    async def run() -> list[str]:
        found: list[str] = []
        for size in sizes:
            for name in ("checkin", "content", "privacy"):
                app = kiosk(language)
                async with app.run_test(size=size) as pilot:
                    app.post_message(app.AgentState(False, "the agent is restarting"))
                    await pilot.pause()
                    await SCREENS[name](pilot)
                    assert app.screen.query_one("AgentBanner").display
                    found += [f"{size} {name}: {p}" for p in problems(app)]
        return found
    return asyncio.run(run())


@pytest.mark.parametrize("language", sorted(load_catalogues()))
def test_screens_usable_with_the_agent_notice_at_the_served_grids(language: str) -> None:
    """The "agent down" notice takes two rows: the keypad's last row (Check in) and the
    hand-off code still show whole on the 7" screen's grid and every other served one — in
    English at every served grid, in the other languages at the narrowest two (at every grid:
    -m slow)."""
    found = _usable_with_the_notice(
        language, SERVED_GRIDS if language == "en" else NOTICE_TIGHTEST)
    assert not found, "\n".join(found)


@pytest.mark.slow
@pytest.mark.parametrize("language", sorted(set(load_catalogues()) - {"en"}))
def test_every_language_with_the_agent_notice_at_every_served_grid(language: str) -> None:
    found = _usable_with_the_notice(
        language, sorted(set(SERVED_GRIDS) - set(NOTICE_TIGHTEST)))
    assert not found, "\n".join(found)


def _decode_cells(lines: list[str]) -> tuple[list[str], list[str]]:
    """A code's half-block cells as the screen shows them (dark on white, 6 px modules),
    read by the project's decoder and by zbar."""
    import numpy as np
    from pyzbar import pyzbar

    from drivers.qr.decoders import RobustDecoder

    dark = {" ": (0, 0), "▀": (1, 0), "▄": (0, 1), "█": (1, 1)}
    modules = [[dark[c][half] for c in line] for line in lines for half in (0, 1)]
    img = np.kron(1 - np.asarray(modules, np.uint8), np.ones((6, 6), np.uint8)) * 255
    img = np.pad(img, 24, constant_values=0)  # the kiosk's dark screen around the code
    ours = [c.payload.decode() for c in RobustDecoder().decode(img)]
    zbar = [d.data.decode() for d in pyzbar.decode(img, symbols=[pyzbar.ZBarSymbol.QRCODE])]
    return ours, zbar


@pytest.mark.parametrize("size", [(80, 24), (100, 24), (114, 26), (80, 65)],
                         ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_hand_off_code_reads_with_the_agent_notice_on_screen(
        size: tuple[int, int]) -> None:
    """With the agent away the notice stays in view while the hand-off code shows whole and
    reads: above the code where the rows allow, beside it in the card's column where they do
    not (80x24)."""
    pytest.importorskip("pyzbar", reason="pip install pyzbar and apt-get install libzbar0")

    async def run() -> None:
        app = kiosk("en")
        async with app.run_test(size=size) as pilot:
            app.post_message(app.AgentState(False, "the agent is restarting"))
            await pilot.pause()
            await SCREENS["content"](pilot)
            assert problems(app) == []
            notices = [w for w in app.screen.query("#agent-banner, #card-notice")
                       if w.display and w.region.area]
            assert len(notices) == 1, "no agent notice on screen with the code"
            notice = notices[0]
            text = app.translator("agent.down")
            screen = app.screen.region
            assert screen.contains_region(notice.region) and \
                notice.region.height >= notice.get_content_height(
                    screen.size, screen.size, notice.content_region.width)
            assert str(notice.render()) == text
            code = app.screen.query_one("#handoff-qr")
            assert screen.contains_region(code.region)
            ours, zbar = _decode_cells(code.lines)  # type: ignore[attr-defined]
            assert ours == zbar == [code.text]  # type: ignore[attr-defined]
            await pilot.click("#back")  # the bar and the notice come back
            await pilot.pause()
            assert app.screen.query_one("ShopperBar").display
            assert app.screen.query_one("#agent-banner").display
    asyncio.run(run())


@pytest.mark.parametrize("size", [(80, 24), (114, 26), (80, 65)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_a_long_page_text_scrolls_and_the_hand_off_stays_on_the_card(
        size: tuple[int, int]) -> None:
    """A page's text longer than the card's rows is all there (it scrolls to its last
    words), and the hand-off button and the offer arrows stay whole on screen."""
    import dataclasses

    async def run() -> None:
        app = kiosk("en")
        async with app.run_test(size=size) as pilot:
            page = app.bundle.pages["autumn-coffee"]
            words = " ".join(f"word{i}" for i in range(200)) + " THE-END"  # under TEXT_MAX
            app.bundle.pages["autumn-coffee"] = dataclasses.replace(page, text={"en": words})
            app.open_page("autumn-coffee", "touch")
            await pilot.pause()
            assert problems(app) == []
            box = app.screen.query_one("#text-box")
            assert box.max_scroll_y > 0, "the text fits: this tells nothing"
            shown = "".join(str(s.text) for s in app.screen._compositor.render_strips())
            assert "THE-END" not in shown and "word0" in shown
            box.scroll_end(animate=False)
            await pilot.pause()
            shown = "".join(str(s.text) for s in app.screen._compositor.render_strips())
            assert "THE-END" in shown
            assert problems(app) == []  # the hand-off button and the arrows stayed
            app.open_page("rain-jacket", "touch")  # the next page opens at its top
            await pilot.pause()
            assert box.scroll_y == 0
    asyncio.run(run())
