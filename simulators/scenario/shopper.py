"""A shopper at the kiosk, played with Textual's Pilot on the real kiosk app: typing a pickup
code on the keypad, waiting for the verdict after showing a code to the camera, answering
the one-tap survey. Each step waits for the screen it needs, so a slow agent makes the
shopper wait, as a person would, instead of pressing buttons that are not there yet."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kiosk.app import KioskApp
from kiosk.screens.attract import AttractScreen
from kiosk.screens.checkin import CheckinScreen
from kiosk.screens.result import ResultScreen
from kiosk.screens.survey import SurveyScreen
from simulators.errors import ShopperError as ShopperError  # kept importable from here


async def until(pilot: Any, cond: Callable[[], bool], timeout: float = 10.0,
                what: str = "") -> None:
    """Wait (letting the app run) until `cond` holds; ShopperError after `timeout`."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise ShopperError(f"the kiosk did not show {what or cond} within {timeout:.0f}s")
        await pilot.pause(0.02)
    await pilot.pause()  # let the new screen finish mounting before anything is pressed


async def go_home(pilot: Any, app: KioskApp) -> None:
    """Back home; the survey the kiosk offers on the way (after browsing or a staff call)
    is skipped, as a shopper in a hurry does."""
    if not isinstance(app.screen, AttractScreen):
        app.home()
        await until(pilot, lambda: isinstance(app.screen, (AttractScreen, SurveyScreen)), 10,
                    "the home screen")
        if isinstance(app.screen, SurveyScreen):
            await pilot.click("#skip")
            await until(pilot, lambda: isinstance(app.screen, AttractScreen), 10,
                        "the home screen")


async def type_pickup_code(pilot: Any, app: KioskApp, code: str,
                           button: str = "#go-pickup") -> None:
    """Type the code and, like a person reading the display, fix it before sending if a
    key press did not land. `button`: the home screen's way to the keypad (an appointment's
    is "#go-appointment")."""
    await go_home(pilot, app)
    await pilot.click(button)
    await until(pilot, lambda: isinstance(app.screen, CheckinScreen), 10, "the keypad")
    screen = app.screen
    assert isinstance(screen, CheckinScreen)
    for _ in range(3):
        for key in code:
            await pilot.click(f"#key-{key}")
        await pilot.pause()
        if screen.code == code:
            break
        await pilot.click("#key-clear")
        await pilot.pause()
    else:
        raise ShopperError(f"the keypad shows {screen.code!r} after typing {code!r} three times")
    await pilot.click("#key-submit")


async def finish_checkin(pilot: Any, app: KioskApp, score: int, timeout: float = 30) -> str:
    """Wait for the verdict, go on to the survey and answer it (0: skip). Returns what the
    kiosk said."""
    await until(pilot, lambda: isinstance(app.screen, ResultScreen), timeout, "a check-in result")
    said = str(app.screen.query_one("#message").render())
    if not app.screen.query("#done"):
        return said
    await pilot.click("#done")
    await until(pilot, lambda: isinstance(app.screen, (SurveyScreen, AttractScreen)), 10,
                "the survey")
    if isinstance(app.screen, SurveyScreen):
        await pilot.click(f"#score-{score}" if score else "#skip")
    await pilot.pause(0.1)
    return said


async def read_result(pilot: Any, app: KioskApp, timeout: float = 10) -> str:
    """What the kiosk answers to a check-in it made by itself (a loyalty card tapped): the
    result screen's message, then back home."""
    await until(pilot, lambda: isinstance(app.screen, ResultScreen), timeout, "a check-in result")
    said = str(app.screen.query_one("#message").render())
    await go_home(pilot, app)
    return said


async def call_staff(pilot: Any, app: KioskApp) -> str:
    """Press "call staff" on the bar at the foot of whatever screen is up; returns what the
    kiosk tells the shopper once the agent has the call."""
    await pilot.click("#call-staff")
    await until(pilot, lambda: bool(app.follow_text), 10, "an answer to the call")
    return app.follow_text
