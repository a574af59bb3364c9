"""What a shopper's session asks the survey after: a staff call before browsing, browsing
only without a check-in (whose result asks itself), once, and afresh for the next shopper."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

from kiosk.app import KioskApp
from kiosk.screens.attract import AttractScreen
from kiosk.screens.content import ContentScreen
from kiosk.screens.survey import SurveyScreen
from kiosk.session import ShopperSession
from kiosk.settings import KioskSection, KioskSettings
from simulators.scenario.shopper import until


def test_the_survey_is_due_after_a_call_or_browsing_once_a_session() -> None:
    s = ShopperSession(random.Random(1))
    assert s.survey_due() is None  # nothing done yet: nothing to ask about
    s.viewed = True
    assert s.survey_due() == "browse"
    s.called_staff = True
    assert s.survey_due() == "staff-call"
    s.surveyed = True
    assert s.survey_due() is None
    s.reset()
    assert s.survey_due() is None and not s.viewed and not s.called_staff
    s.viewed = s.checked_in = True  # the check-in's result offers the survey itself
    assert s.survey_due() is None


def test_a_session_left_at_the_home_screen_ends_after_the_idle_time() -> None:
    """The shopper browsed and went home, then left: the next one is a new session (another
    variant draw, the survey offered again) though the screen did not change."""
    now = [1000.0]
    sent: list[tuple[str, object]] = []

    async def run() -> None:
        app = KioskApp(KioskSettings(), clock=lambda: now[0], connect=False,
                       rng=random.Random(1))
        app.record = lambda t, d: sent.append((t, d))  # type: ignore[method-assign]
        async with app.run_test(size=(120, 44)) as pilot:
            await pilot.click("#go-browse")
            await until(pilot, lambda: isinstance(app.screen, ContentScreen))
            await pilot.click("#back")
            await until(pilot, lambda: isinstance(app.screen, SurveyScreen))
            await pilot.click("#skip")
            await until(pilot, lambda: isinstance(app.screen, AttractScreen))
            assert app.session.started() and app.session.surveyed
            for _ in range(3):  # the home screen, untouched, past the idle time
                now[0] += app.cfg.kiosk.idle_s / 2
                await app.idle_tick()
            assert not app.session.started()
            await pilot.click("#go-browse")
            await until(pilot, lambda: isinstance(app.screen, ContentScreen))
            await pilot.click("#back")  # the next shopper is asked too
            await until(pilot, lambda: isinstance(app.screen, SurveyScreen))
    asyncio.run(run())
    assert [d["ended"] for t, d in sent if t == "o2o.kiosk.session"] == [  # type: ignore[index]
        "idle-home"]


def test_the_home_screens_slide_promises_the_variant_the_card_shows(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({
        "version": 2, "attract": ["coffee"],
        "pages": [{"id": "coffee", "title": {"en": "Coffee"}, "link": "https://shop.example/c",
                   "variants": [{"name": "a"},
                                {"name": "b", "title": {"en": "Try our blend"}}]}]}))
    settings = KioskSettings(kiosk=KioskSection(content_dir=str(tmp_path)))
    pairs: list[tuple[str, str]] = []

    async def run() -> None:
        app = KioskApp(settings, connect=False, rng=random.Random(4))
        app.record = lambda t, d: None  # type: ignore[method-assign]
        async with app.run_test(size=(120, 44)) as pilot:
            for _ in range(8):
                home = app.screen
                assert isinstance(home, AttractScreen)
                home.show_slide()
                slide = str(home.query_one("#slide-title").render())
                app.go("browse")  # the home screen's Browse (pressed again within its 0.2 s
                # "pressed" look, a Button ignores the press)
                await until(pilot, lambda: isinstance(app.screen, ContentScreen), what="card")
                pairs.append((slide, str(app.screen.query_one("#title").render())))
                await app.reset_session("idle")  # the next shopper draws anew
                await until(pilot, lambda: isinstance(app.screen, AttractScreen), what="home")
    asyncio.run(run())
    assert all(slide == card for slide, card in pairs), pairs
    assert {card for _, card in pairs} == {"Coffee", "Try our blend"}
